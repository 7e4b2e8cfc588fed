//! vigil.v1 wire types. The schema lives in `proto/vigil/v1/`; generated code arrives with the
//! control plane (issue 3).

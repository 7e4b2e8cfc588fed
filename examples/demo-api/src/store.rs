//! The in-memory data behind the demo API: seeded users, orders and comments.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::json::Json;

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub name: String,
    pub email: String,
    pub role: String,
    /// Only a few seeded users can log in.
    pub password: Option<String>,
}

impl User {
    /// Public representation (never includes the password).
    pub fn to_json(&self) -> Json {
        Json::obj([
            ("id", Json::Int(self.id)),
            ("username", Json::str(&self.username)),
            ("name", Json::str(&self.name)),
            ("email", Json::str(&self.email)),
            ("role", Json::str(&self.role)),
        ])
    }
}

#[derive(Debug, Default)]
pub struct Data {
    pub users: Vec<User>,
    /// Orders as JSON objects whose first member is `"id"`.
    pub orders: Vec<(i64, Json)>,
    pub next_order_id: i64,
    pub comments: usize,
    pub tokens_issued: u64,
}

#[derive(Debug)]
pub struct Store {
    data: Mutex<Data>,
    random: RandomState,
}

/// (username, display name, role, password)
const SEED_USERS: [(&str, &str, &str, Option<&str>); 20] = [
    ("alice", "Alice Liddell", "admin", Some("wonderland")),
    ("bob", "Bob Builder", "user", Some("builder")),
    ("carol", "Carol Danvers", "user", Some("marvel")),
    ("dave", "Dave Bowman", "user", None),
    ("erin", "Erin Brockovich", "support", None),
    ("frank", "Frank Poole", "user", None),
    ("grace", "Grace Hopper", "admin", None),
    ("heidi", "Heidi Klum", "user", None),
    ("ivan", "Ivan Petrov", "user", None),
    ("judy", "Judy Hopps", "support", None),
    ("mallory", "Mallory Knox", "user", None),
    ("niaj", "Niaj Patel", "user", None),
    ("olivia", "Olivia Benson", "user", None),
    ("peggy", "Peggy Carter", "user", None),
    ("rupert", "Rupert Giles", "user", None),
    ("sybil", "Sybil Trelawney", "user", None),
    ("trent", "Trent Reznor", "user", None),
    ("victor", "Victor Frankenstein", "user", None),
    ("walter", "Walter White", "user", None),
    ("zoe", "Zoe Washburne", "user", None),
];

/// (user id, item, quantity, unit price in cents, status)
const SEED_ORDERS: [(i64, &str, i64, i64, &str); 8] = [
    (1, "Pocket watch", 1, 12_500, "shipped"),
    (1, "Tea set", 2, 4_999, "delivered"),
    (2, "Hard hat", 1, 2_450, "processing"),
    (2, "Spirit level", 3, 1_299, "shipped"),
    (3, "Flight jacket", 1, 18_900, "delivered"),
    (5, "Water test kit", 4, 3_500, "processing"),
    (7, "COBOL manual", 1, 5_999, "shipped"),
    (12, "Road atlas", 2, 1_850, "cancelled"),
];

pub fn order_json(
    id: i64,
    user_id: i64,
    item: &str,
    quantity: i64,
    unit_cents: i64,
    status: &str,
) -> Json {
    Json::obj([
        ("id", Json::Int(id)),
        ("user_id", Json::Int(user_id)),
        ("item", Json::str(item)),
        ("quantity", Json::Int(quantity)),
        ("total", Json::Float((quantity * unit_cents) as f64 / 100.0)),
        ("status", Json::str(status)),
    ])
}

impl Default for Store {
    fn default() -> Self {
        Store::seeded()
    }
}

impl Store {
    pub fn seeded() -> Store {
        let users = SEED_USERS
            .iter()
            .zip(1..)
            .map(|(&(username, name, role, password), id)| User {
                id,
                username: username.to_string(),
                name: name.to_string(),
                email: format!("{username}@example.com"),
                role: role.to_string(),
                password: password.map(str::to_string),
            })
            .collect();
        let orders: Vec<(i64, Json)> = SEED_ORDERS
            .iter()
            .zip(1001..)
            .map(|(&(user, item, qty, cents, status), id)| {
                (id, order_json(id, user, item, qty, cents, status))
            })
            .collect();
        let next_order_id = 1001 + orders.len() as i64;
        Store {
            data: Mutex::new(Data {
                users,
                orders,
                next_order_id,
                comments: 0,
                tokens_issued: 0,
            }),
            random: RandomState::new(),
        }
    }

    /// Locks the data; a panic in another thread does not make the store unusable.
    pub fn lock(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks credentials and returns the user on success.
    pub fn authenticate(&self, username: &str, password: &str) -> Option<User> {
        let data = self.lock();
        data.users
            .iter()
            .find(|u| u.username == username && u.password.as_deref() == Some(password))
            .cloned()
    }

    /// An opaque, unpredictable session token.
    pub fn new_token(&self, username: &str) -> String {
        let serial = {
            let mut data = self.lock();
            data.tokens_issued += 1;
            data.tokens_issued
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mut out = String::from("vgl_");
        for round in 0u8..2 {
            let mut h = self.random.build_hasher();
            h.write(username.as_bytes());
            h.write_u64(serial);
            h.write_u128(nanos);
            h.write_u8(round);
            out.push_str(&format!("{:016x}", h.finish()));
        }
        out
    }
}

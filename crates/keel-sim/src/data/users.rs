//! Deterministic users for the `GET /api/v2/users` list endpoint.

use super::conversation::NAMES;
use super::hash::{h3, push_uuid, unique_tail, uuid_string};
use super::Dataset;

const SALT_USER: u64 = 20;

impl Dataset {
    /// The id of user `u`.
    pub(crate) fn user_id(&self, u: u64) -> String {
        uuid_string(
            h3(self.seed, u, SALT_USER),
            unique_tail(self.seed, SALT_USER, u),
        )
    }

    /// Appends the quoted id of user `u`.
    pub(crate) fn push_user_id(&self, out: &mut Vec<u8>, u: u64) {
        out.push(b'"');
        push_uuid(
            out,
            h3(self.seed, u, SALT_USER),
            unique_tail(self.seed, SALT_USER, u),
        );
        out.push(b'"');
    }

    /// The display name of user `u`.
    pub(crate) fn user_name(&self, u: u64) -> &'static str {
        NAMES[(u % NAMES.len() as u64) as usize]
    }

    /// The JSON of user `u` (a `User` entity, keys sorted).
    pub(crate) fn user_json(&self, u: u64) -> serde_json::Value {
        let id = self.user_id(u);
        let division = self
            .division_id((u % super::facts::DIVISIONS) as u8)
            .to_owned();
        serde_json::json!({
            "acdAutoAnswer": false,
            "chat": { "jabberId": format!("{id}@sim.orgspan.com") },
            "division": {
                "id": division,
                "name": format!("Division {}", u % super::facts::DIVISIONS),
                "selfUri": format!("/api/v2/authorization/divisions/{division}"),
            },
            "email": format!("user{u}@example.com"),
            "id": id,
            "name": self.user_name(u),
            "selfUri": format!("/api/v2/users/{id}"),
            "state": "active",
            "username": format!("user{u}@example.com"),
            "version": 1 + u % 7,
        })
    }
}

//! Random identifiers: request ids, message ids and verification-link tokens, from the OS's
//! random source (uuid v4).

/// A random UUID.
pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An SES-shaped MessageId (`0100` + 12 hex, a UUID, `-000000`) around a fresh `id`.
pub fn message_id(id: &str) -> String {
    let prefix: String = id.chars().filter(|c| *c != '-').take(12).collect();
    format!("0100{prefix}-{id}-000000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_have_the_shape_ses_gives_them_and_differ() {
        let id = message_id(&uuid());
        assert!(id.starts_with("0100") && id.ends_with("-000000"), "{id}");
        assert_eq!(id.len(), 4 + 12 + 1 + 36 + 7);
        assert_ne!(message_id(&uuid()), id);
    }
}

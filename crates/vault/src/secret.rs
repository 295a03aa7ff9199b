//! A string that does not print itself.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// A secret string (password, token, client secret...).
///
/// `Debug` and `Display` print `***`, so a `Secret` can sit in structs that
/// are logged or put in error messages without leaking. Read it with
/// [`Secret::expose`] at the one place that needs the value. The buffer is
/// overwritten with zeros on drop (best effort: copies made before the
/// value became a `Secret`, or by `expose` callers, are not covered).
///
/// Equality is constant-time in the content (the length still shows).
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret value. Keep the borrow short and never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:#?}", Some(s.clone())), "Some(\n    ***,\n)");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn equality_and_conversions() {
        assert_eq!(Secret::from("a"), Secret::new(String::from("a")));
        assert_ne!(Secret::from("a"), Secret::from("b"));
        assert_ne!(Secret::from("a"), Secret::from("ab"));
        assert!(Secret::default().is_empty());
        assert!(!Secret::from("x").is_empty());
    }
}

//! Decoding errors.

/// Why a document could not be decoded. Positions are byte offsets into the
/// input. Messages quote at most a short snippet of a bad scalar, never the
/// document (the first parameter of every Keap call is a private key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is longer than [`crate::MAX_INPUT_BYTES`].
    #[error("XML-RPC document of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input is not UTF-8.
    #[error("XML-RPC document is not valid UTF-8 (at byte {at})")]
    InvalidUtf8 {
        /// Offset of the first bad byte.
        at: usize,
    },
    /// The XML declaration names an encoding other than UTF-8 (or ASCII).
    #[error("unsupported XML encoding {0:?} (only UTF-8 is accepted)")]
    UnsupportedEncoding(String),
    /// A `<!DOCTYPE>` was present. DTDs are refused outright, so no entity
    /// (internal or external) can ever be declared or expanded.
    #[error("DOCTYPE declarations are not accepted in XML-RPC")]
    DocType,
    /// The input is not well-formed XML.
    #[error("malformed XML at byte {at}: {message}")]
    Xml {
        /// Where the parser stopped.
        at: u64,
        /// What the parser reported.
        message: String,
    },
    /// Values nest deeper than [`crate::MAX_DEPTH`].
    #[error("XML-RPC values nest deeper than {max} levels (at byte {at})")]
    TooDeep {
        /// Where the limit was crossed.
        at: u64,
        /// The limit.
        max: usize,
    },
    /// Well-formed XML that is not a valid XML-RPC call or response.
    #[error("invalid XML-RPC structure at byte {at}: {message}")]
    Structure {
        /// Where the problem was found.
        at: u64,
        /// What was wrong.
        message: String,
    },
    /// A scalar whose text is invalid for its type, e.g. `<int>x</int>`.
    #[error("invalid <{kind}> value at byte {at}: {message}")]
    InvalidValue {
        /// The XML-RPC type.
        kind: &'static str,
        /// Where the value ends.
        at: u64,
        /// What was wrong (with a short snippet of the text).
        message: String,
    },
    /// A type element this crate does not read, e.g. `<ex:dom>`.
    #[error("unsupported XML-RPC value type <{name}> at byte {at}")]
    UnsupportedType {
        /// The element's local name.
        name: String,
        /// Where it was found.
        at: u64,
    },
}

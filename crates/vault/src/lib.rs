//! switchyard-vault

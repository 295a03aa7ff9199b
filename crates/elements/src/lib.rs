//! switchyard-elements

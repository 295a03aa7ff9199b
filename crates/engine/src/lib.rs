//! switchyard-engine

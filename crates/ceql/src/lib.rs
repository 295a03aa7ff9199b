//! switchyard-ceql

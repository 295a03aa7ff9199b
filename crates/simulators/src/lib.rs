//! switchyard-simulators

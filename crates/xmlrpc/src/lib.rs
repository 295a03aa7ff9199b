//! switchyard-xmlrpc

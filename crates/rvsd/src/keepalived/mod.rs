//! keepalived.conf in rvsd: loading and reloading the file ([`reload`]), applying its virtual services and
//! running their health checkers, and what the checkers tell the outside (notify scripts,
//! smtp alerts). The pure policy (pools, reload diff) lives in `rvs_keepalived`.

pub mod alerts;
pub mod checkers;
pub mod client_path;
pub mod dump;
pub mod health;
pub mod load;
pub mod notify;
pub mod reload;
pub mod smtp;

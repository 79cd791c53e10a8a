//! Persistence behind traits: the location (usrloc) store. SQLite is the embedded default;
//! Redis/PostgreSQL implementations for shared state come with their issue.

pub mod sqlite;

use thiserror::Error;

use crate::modules::usrloc::Contact;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(String),
}

/// Where registrations live beyond the process (Kamailio's `location` table).
pub trait LocationStore: Send + Sync {
    /// Every stored contact of a table (usrloc preload).
    fn load(&self, table: &str) -> Result<Vec<Contact>, StoreError>;
    /// Inserts or updates contacts (matched by ruid) and deletes the given ruids.
    fn sync(&self, table: &str, upsert: &[Contact], delete: &[String]) -> Result<(), StoreError>;
}

/// Opens the location store in a SQLite file (created with the schema if missing).
pub fn open_location_store(path: &std::path::Path) -> Result<Box<dyn LocationStore>, StoreError> {
    Ok(Box::new(sqlite::SqliteStore::open(path)?))
}

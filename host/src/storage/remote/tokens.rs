//! The HTTP API's tokens in PostgreSQL (`vessel_tokens`), so every host
//! of a shared backend accepts the same tokens, and a revoke on one host
//! counts on every other at its next request (each check is one indexed
//! lookup, never a cached copy).

use super::{DbError, RemoteStore};
use crate::storage::tokens::{StoredToken, TokenTable, TokenTableError};

impl From<DbError> for TokenTableError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(m) => TokenTableError::Unavailable(m),
            DbError::Failed(m) => TokenTableError::Failed(m),
        }
    }
}

fn row_token(row: &tokio_postgres::Row) -> Result<StoredToken, DbError> {
    let text: String = row.try_get("body")?;
    let record = serde_json::from_str(&text)
        .map_err(|e| DbError::Failed(format!("a token row is not JSON: {e}")))?;
    Ok(StoredToken {
        id: row.try_get("id")?,
        hash: row.try_get("hash")?,
        record,
    })
}

impl TokenTable for RemoteStore {
    fn all(&self) -> Result<Vec<StoredToken>, TokenTableError> {
        Ok(self.block_db(|inner| async move {
            let client = inner.pool.get().await?;
            let rows = client
                .query("SELECT id, hash, body FROM vessel_tokens ORDER BY seq", &[])
                .await?;
            rows.iter().map(row_token).collect()
        })?)
    }

    fn insert(&self, token: StoredToken) -> Result<(), TokenTableError> {
        let body = token.record.to_string();
        Ok(self.block_db(|inner| async move {
            let client = inner.pool.get().await?;
            client
                .execute(
                    "INSERT INTO vessel_tokens (id, hash, body) VALUES ($1, $2, $3)",
                    &[&token.id, &token.hash, &body],
                )
                .await?;
            Ok(())
        })?)
    }

    fn remove(&self, id: &str) -> Result<bool, TokenTableError> {
        let id = id.to_owned();
        Ok(self.block_db(|inner| async move {
            let client = inner.pool.get().await?;
            let n = client
                .execute("DELETE FROM vessel_tokens WHERE id = $1", &[&id])
                .await?;
            Ok(n > 0)
        })?)
    }

    fn find(&self, hash: &str) -> Result<Option<StoredToken>, TokenTableError> {
        // The lookup is by the hash of the presented secret: its timing
        // tells a guesser nothing about any stored secret.
        let hash = hash.to_owned();
        Ok(self.block_db(|inner| async move {
            let client = inner.pool.get().await?;
            let row = client
                .query_opt(
                    "SELECT id, hash, body FROM vessel_tokens WHERE hash = $1",
                    &[&hash],
                )
                .await?;
            row.as_ref().map(row_token).transpose()
        })?)
    }
}

//! The embedded migrations, shared by both backends (their SQL is portable). A migration that
//! has run is never edited: a change to the schema is a new file here and a new entry below.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

/// One embedded migration.
fn migration(version: i64, name: &'static str, sql: &'static str) -> Migration {
    Migration::new(
        version,
        Cow::Borrowed(name),
        MigrationType::Simple,
        AssertSqlSafe(sql).into_sql_str(),
        false,
    )
}

/// Every migration, in order.
pub(crate) fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        migration(1, "chat", include_str!("../migrations/0001_chat.sql")),
        migration(2, "stripe", include_str!("../migrations/0002_stripe.sql")),
        migration(3, "catalog", include_str!("../migrations/0003_catalog.sql")),
        migration(
            4,
            "frames_without_reply_index",
            include_str!("../migrations/0004_frames_without_reply_index.sql"),
        ),
        migration(5, "orders", include_str!("../migrations/0005_orders.sql")),
        migration(
            6,
            "publishable_keys",
            include_str!("../migrations/0006_publishable_keys.sql"),
        ),
        migration(
            8,
            "subscriptions",
            include_str!("../migrations/0008_subscriptions.sql"),
        ),
        migration(
            9,
            "mode_events_by_account",
            include_str!("../migrations/0009_mode_events_by_account.sql"),
        ),
        migration(
            10,
            "app_webhooks",
            include_str!("../migrations/0010_app_webhooks.sql"),
        ),
        migration(
            11,
            "operations",
            include_str!("../migrations/0011_operations.sql"),
        ),
    ])
}

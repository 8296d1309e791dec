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
        migration(
            12,
            "workspaces",
            include_str!("../migrations/0012_workspaces.sql"),
        ),
        migration(13, "portal", include_str!("../migrations/0013_portal.sql")),
        migration(
            14,
            "tokens_revoked_index",
            include_str!("../migrations/0014_tokens_revoked_index.sql"),
        ),
        migration(
            15,
            "invites",
            include_str!("../migrations/0015_invites.sql"),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::Row;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    use super::*;

    /// A database from before workspaces: each token becomes a workspace with its projects.
    #[tokio::test]
    async fn each_existing_token_becomes_a_workspace_with_its_projects() {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .unwrap()
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let all = migrator();
        let before =
            Migrator::with_migrations(all.iter().filter(|m| m.version < 11).cloned().collect());
        before.run(&pool).await.unwrap();
        for (token, project) in [
            ("tok_aaa", "prj_a1"),
            ("tok_bbb", "prj_b1"),
            ("tok_aaa", "prj_a2"),
        ] {
            sqlx::query("INSERT INTO tokens (id, name, secret_hash, created_at) VALUES ($1, $1, $1, 1) ON CONFLICT DO NOTHING")
                .bind(token)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO projects (id, token_id, name, backend, mode, created_at) VALUES ($1, $2, 'p', TRUE, 'test', 1)")
                .bind(project)
                .bind(token)
                .execute(&pool)
                .await
                .unwrap();
        }
        all.run(&pool).await.unwrap();
        let rows = sqlx::query(
            "SELECT p.id, p.workspace_id, t.workspace_id AS token_workspace, t.kind, w.name \
             FROM projects p JOIN tokens t ON t.id = p.token_id \
             JOIN workspaces w ON w.id = p.workspace_id ORDER BY p.id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let seen: Vec<(String, String, String, String, String)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect();
        let row = |p: &str, w: &str, name: &str| {
            (
                p.to_owned(),
                w.to_owned(),
                w.to_owned(),
                "api".to_owned(),
                name.to_owned(),
            )
        };
        assert_eq!(
            seen,
            vec![
                row("prj_a1", "wsp_aaa", "tok_aaa"),
                row("prj_a2", "wsp_aaa", "tok_aaa"),
                row("prj_b1", "wsp_bbb", "tok_bbb"),
            ]
        );
    }
}

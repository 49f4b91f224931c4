//! The shared storage suite: every story runs against SQLite and PostgreSQL.

use chrono::Duration;
use claudenest::{
    domain::clock,
    store::{ApiToken, StoreError, StoreKind, User},
};
use claudenest_e2e::{Backend, on_both_stores};
use sqlx::types::Json;
use uuid::Uuid;

fn user(email: &str) -> User {
    let now = clock::now();
    User {
        id: Uuid::now_v7(),
        name: "Ada".into(),
        email: email.into(),
        password_hash: Some("$argon2id$…".into()),
        avatar_url: None,
        email_verified_at: Some(now),
        created_at: now,
        updated_at: now,
    }
}

fn token(user_id: Uuid, hash: u8) -> ApiToken {
    ApiToken {
        id: Uuid::now_v7(),
        user_id,
        name: format!("token {hash}"),
        token_hash: vec![hash; 32],
        abilities: Json(vec!["machines:read".into()]),
        last_used_at: None,
        expires_at: Some(clock::now() + Duration::days(30)),
        revoked_at: None,
        created_at: clock::now(),
    }
}

on_both_stores! {
    async fn opens_migrates_twice_and_answers_ping(db: TestDb) {
        let store = db.open().await;
        store.ping().await.unwrap();
        let expected = match db.backend {
            Backend::Sqlite => StoreKind::Sqlite,
            Backend::Postgres => StoreKind::Postgres,
        };
        assert_eq!(store.kind(), expected);
        // A second process (or restart) finds the schema in place.
        store.migrate().await.unwrap();
        let again = db.open().await;
        again.ping().await.unwrap();
    }

    async fn users_round_trip_exactly(db: TestDb) {
        let store = db.open().await;
        let ada = user("ada@example.com");
        store.insert_user(&ada).await.unwrap();
        assert_eq!(store.user_by_id(ada.id).await.unwrap(), Some(ada.clone()));
        assert_eq!(store.user_by_email("ada@example.com").await.unwrap(), Some(ada.clone()));
        assert_eq!(store.user_by_id(Uuid::now_v7()).await.unwrap(), None);
        assert_eq!(store.user_by_email("nobody@example.com").await.unwrap(), None);
    }

    async fn duplicate_email_is_a_conflict_and_keeps_the_first(db: TestDb) {
        let store = db.open().await;
        let first = user("dup@example.com");
        store.insert_user(&first).await.unwrap();
        let second = user("dup@example.com");
        let err = store.insert_user(&second).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
        assert_eq!(store.user_by_email("dup@example.com").await.unwrap(), Some(first));
        assert_eq!(store.user_by_id(second.id).await.unwrap(), None);
    }

    async fn tokens_are_found_by_hash_listed_and_revoked_by_their_owner_only(db: TestDb) {
        let store = db.open().await;
        let (ada, bob) = (user("ada@example.com"), user("bob@example.com"));
        store.insert_user(&ada).await.unwrap();
        store.insert_user(&bob).await.unwrap();
        let (t1, t2) = (token(ada.id, 1), token(ada.id, 2));
        store.insert_token(&t1).await.unwrap();
        store.insert_token(&t2).await.unwrap();
        assert_eq!(store.token_by_hash(&[1; 32]).await.unwrap(), Some(t1.clone()));
        assert_eq!(store.token_by_hash(&[9; 32]).await.unwrap(), None);

        let listed = store.tokens_of_user(ada.id).await.unwrap();
        assert_eq!(listed, vec![t2.clone(), t1.clone()], "newest first");
        assert!(store.tokens_of_user(bob.id).await.unwrap().is_empty());

        let now = clock::now();
        assert!(!store.revoke_token(bob.id, t1.id, now).await.unwrap(), "not bob's token");
        assert!(store.token_by_hash(&[1; 32]).await.unwrap().unwrap().revoked_at.is_none());
        assert!(store.revoke_token(ada.id, t1.id, now).await.unwrap());
        assert!(!store.revoke_token(ada.id, t1.id, now).await.unwrap(), "already revoked");
        let revoked = store.token_by_hash(&[1; 32]).await.unwrap().unwrap();
        assert_eq!(revoked.revoked_at, Some(now));
        assert!(!revoked.is_active(now));
    }

    async fn duplicate_token_hash_is_a_conflict(db: TestDb) {
        let store = db.open().await;
        let ada = user("ada@example.com");
        store.insert_user(&ada).await.unwrap();
        store.insert_token(&token(ada.id, 7)).await.unwrap();
        let err = store.insert_token(&token(ada.id, 7)).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
    }

    async fn touching_a_token_only_moves_last_used_forward(db: TestDb) {
        let store = db.open().await;
        let ada = user("ada@example.com");
        store.insert_user(&ada).await.unwrap();
        let t = token(ada.id, 3);
        store.insert_token(&t).await.unwrap();
        let later = clock::now() + Duration::minutes(5);
        store.touch_token(t.id, later).await.unwrap();
        store.touch_token(t.id, later - Duration::minutes(1)).await.unwrap();
        let seen = store.token_by_hash(&[3; 32]).await.unwrap().unwrap();
        assert_eq!(seen.last_used_at, Some(later));
    }
}

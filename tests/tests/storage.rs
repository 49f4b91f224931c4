//! The shared storage suite: every story runs against SQLite and PostgreSQL.

use chrono::Duration;
use claudenest::{
    domain::clock,
    store::{ApiToken, OAuthIdentity, OAuthState, PasswordReset, StoreError, StoreKind, User},
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
        assert_eq!(store.token_with_owner(&[1; 32]).await.unwrap(), Some((t1.clone(), ada.clone())));
        assert_eq!(store.token_with_owner(&[9; 32]).await.unwrap(), None);

        let listed = store.tokens_of_user(ada.id).await.unwrap();
        assert_eq!(listed, vec![t2.clone(), t1.clone()], "newest first");
        assert!(store.tokens_of_user(bob.id).await.unwrap().is_empty());

        let now = clock::now();
        assert!(!store.revoke_token(bob.id, t1.id, now).await.unwrap(), "not bob's token");
        assert!(store.token_with_owner(&[1; 32]).await.unwrap().unwrap().0.revoked_at.is_none());
        assert!(store.revoke_token(ada.id, t1.id, now).await.unwrap());
        assert!(!store.revoke_token(ada.id, t1.id, now).await.unwrap(), "already revoked");
        let (revoked, _) = store.token_with_owner(&[1; 32]).await.unwrap().unwrap();
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
        let (seen, _) = store.token_with_owner(&[3; 32]).await.unwrap().unwrap();
        assert_eq!(seen.last_used_at, Some(later));
    }

    async fn oauth_identities_link_users_and_creation_is_all_or_nothing(db: TestDb) {
        let store = db.open().await;
        let ada = user("ada@example.com");
        let identity = |user_id, subject: &str| OAuthIdentity {
            id: Uuid::now_v7(), user_id, provider: "github".into(),
            subject: subject.into(), created_at: clock::now(),
        };
        store.insert_user_with_identity(&ada, &identity(ada.id, "1")).await.unwrap();
        assert_eq!(store.user_by_oauth_identity("github", "1").await.unwrap(), Some(ada.clone()));
        assert_eq!(store.user_by_oauth_identity("google", "1").await.unwrap(), None);

        // Same e-mail: the user insert fails, so the identity must not exist either.
        let twin = user("ada@example.com");
        let err = store.insert_user_with_identity(&twin, &identity(twin.id, "2")).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
        assert_eq!(store.user_by_oauth_identity("github", "2").await.unwrap(), None);

        // One identity per provider subject.
        let err = store.insert_oauth_identity(&identity(ada.id, "1")).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict), "{err:?}");

        let mut unverified = user("bob@example.com");
        unverified.email_verified_at = None;
        store.insert_user(&unverified).await.unwrap();
        let at = clock::now();
        store.confirm_user_email(unverified.id, at, Some("https://a/b.png")).await.unwrap();
        let later = at + Duration::hours(1);
        store.confirm_user_email(unverified.id, later, Some("https://other.png")).await.unwrap();
        let bob = store.user_by_id(unverified.id).await.unwrap().unwrap();
        assert_eq!(bob.email_verified_at, Some(at), "the first verification date is kept");
        assert_eq!(bob.avatar_url.as_deref(), Some("https://a/b.png"));
    }

    async fn oauth_states_are_single_use_and_swept_when_expired(db: TestDb) {
        let store = db.open().await;
        let now = clock::now();
        let state = |hash: u8, expires_at| OAuthState {
            state_hash: vec![hash; 32], provider: "google".into(), pkce_verifier: format!("v{hash}"),
            created_at: now, expires_at,
        };
        store.insert_oauth_state(&state(1, now - Duration::seconds(1))).await.unwrap();
        // Starting another authorization sweeps the expired one.
        store.insert_oauth_state(&state(2, now + Duration::minutes(10))).await.unwrap();
        assert_eq!(store.take_oauth_state(&[1; 32]).await.unwrap(), None);
        let taken = store.take_oauth_state(&[2; 32]).await.unwrap().unwrap();
        assert_eq!(taken.pkce_verifier, "v2");
        assert_eq!(store.take_oauth_state(&[2; 32]).await.unwrap(), None, "single use");
    }

    async fn password_resets_are_consumed_once_by_their_user_before_expiry(db: TestDb) {
        let store = db.open().await;
        let (ada, bob) = (user("ada@example.com"), user("bob@example.com"));
        store.insert_user(&ada).await.unwrap();
        store.insert_user(&bob).await.unwrap();
        let now = clock::now();
        let reset = |hash: u8, expires_at| PasswordReset {
            id: Uuid::now_v7(), user_id: ada.id, token_hash: vec![hash; 32],
            expires_at, used_at: None, created_at: now,
        };
        store.insert_password_reset(&reset(1, now + Duration::minutes(60))).await.unwrap();
        store.insert_password_reset(&reset(2, now - Duration::seconds(1))).await.unwrap();
        assert_eq!(store.consume_password_reset(bob.id, &[1; 32], now).await.unwrap(), None, "not bob's");
        assert_eq!(store.consume_password_reset(ada.id, &[2; 32], now).await.unwrap(), None, "expired");
        let used = store.consume_password_reset(ada.id, &[1; 32], now).await.unwrap().unwrap();
        assert_eq!(used.used_at, Some(now));
        assert_eq!(store.consume_password_reset(ada.id, &[1; 32], now).await.unwrap(), None, "used");
    }

    async fn resetting_a_password_revokes_every_token_of_that_user_only(db: TestDb) {
        let store = db.open().await;
        let (ada, bob) = (user("ada@example.com"), user("bob@example.com"));
        store.insert_user(&ada).await.unwrap();
        store.insert_user(&bob).await.unwrap();
        for (owner, hash) in [(ada.id, 1), (ada.id, 2), (bob.id, 3)] {
            store.insert_token(&token(owner, hash)).await.unwrap();
        }
        let at = clock::now();
        store.reset_password(ada.id, "$argon2id$new", at).await.unwrap();
        let ada_now = store.user_by_id(ada.id).await.unwrap().unwrap();
        assert_eq!(ada_now.password_hash.as_deref(), Some("$argon2id$new"));
        assert_eq!(ada_now.updated_at, at);
        assert!(store.tokens_of_user(ada.id).await.unwrap().iter().all(|t| t.revoked_at == Some(at)));
        assert!(store.tokens_of_user(bob.id).await.unwrap().iter().all(|t| t.revoked_at.is_none()));
    }
}

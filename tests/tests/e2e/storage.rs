//! The shared storage suite: every story runs against SQLite and PostgreSQL.

use chrono::Duration;
use claudenest::{
    domain::clock,
    protocol::{Environment, Ipv4Network},
    store::{
        ApiToken, Machine, MachineFilter, OAuthIdentity, OAuthState, Pairing, PasswordReset,
        Session, SessionStatus, StoreError, StoreKind, User,
    },
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

fn machine(user_id: Uuid, name: &str, hash: u8) -> Machine {
    let now = clock::now();
    Machine {
        id: Uuid::now_v7(),
        user_id,
        name: name.into(),
        token_hash: vec![hash; 32],
        platform: None,
        hostname: Some(format!("{name}.lan")),
        arch: None,
        node_version: None,
        agent_version: None,
        claude_version: None,
        claude_path: None,
        capabilities: Json(vec!["gpu".into()]),
        max_sessions: 10,
        mac_addresses: Json(vec![]),
        networks: Json(vec![]),
        wol_mac: None,
        wol_broadcast: "127.0.0.1".into(),
        wol_port: 9,
        status: "offline".into(),
        status_at: now,
        connected_at: None,
        last_seen_at: None,
        created_at: now,
        updated_at: now,
    }
}

fn filter(status: Option<&str>, search: Option<&str>) -> MachineFilter {
    let now = clock::now();
    MachineFilter {
        search: search.map(str::to_owned),
        status: status.map(str::to_owned),
        online_after: now - Duration::seconds(50),
        connecting_after: now - Duration::minutes(5),
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
        store.reset_password(ada.id, Some("$argon2id$new"), at).await.unwrap();
        let ada_now = store.user_by_id(ada.id).await.unwrap().unwrap();
        assert_eq!(ada_now.password_hash.as_deref(), Some("$argon2id$new"));
        assert_eq!(ada_now.updated_at, at);
        assert!(store.tokens_of_user(ada.id).await.unwrap().iter().all(|t| t.revoked_at == Some(at)));
        assert!(store.tokens_of_user(bob.id).await.unwrap().iter().all(|t| t.revoked_at.is_none()));
    }

    async fn machines_are_owner_scoped_unique_per_user_and_round_trip(db: TestDb) {
        let store = db.open().await;
        let (ada, bob) = (user("ada@example.com"), user("bob@example.com"));
        store.insert_user(&ada).await.unwrap();
        store.insert_user(&bob).await.unwrap();
        let desk = machine(ada.id, "desk", 1);
        store.insert_machine(&desk).await.unwrap();
        assert_eq!(store.machine(ada.id, desk.id).await.unwrap(), Some(desk.clone()));
        assert_eq!(store.machine(bob.id, desk.id).await.unwrap(), None, "owner-scoped");
        assert_eq!(store.machine_by_token_hash(&[1; 32]).await.unwrap(), Some(desk.clone()));

        let err = store.insert_machine(&machine(ada.id, "desk", 2)).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
        store.insert_machine(&machine(bob.id, "desk", 3)).await.unwrap();

        let mut renamed = desk.clone();
        renamed.name = "study".into();
        renamed.wol_port = 4009;
        renamed.user_id = bob.id;
        assert!(!store.update_machine_settings(&renamed).await.unwrap(), "not bob's to change");
        renamed.user_id = ada.id;
        assert!(store.update_machine_settings(&renamed).await.unwrap());
        assert_eq!(store.machine(ada.id, desk.id).await.unwrap().unwrap().wol_port, 4009);

        let now = clock::now();
        assert!(!store.set_machine_token(bob.id, desk.id, &[9; 32], now).await.unwrap());
        assert!(store.set_machine_token(ada.id, desk.id, &[9; 32], now).await.unwrap());
        assert_eq!(store.machine_by_token_hash(&[1; 32]).await.unwrap(), None, "old token dead");
        assert!(!store.delete_machine(bob.id, desk.id).await.unwrap());
        assert!(store.delete_machine(ada.id, desk.id).await.unwrap());
        assert_eq!(store.machine(ada.id, desk.id).await.unwrap(), None);
    }

    async fn machine_lists_filter_page_and_judge_presence_by_age(db: TestDb) {
        let store = db.open().await;
        let ada = user("ada@example.com");
        store.insert_user(&ada).await.unwrap();
        let names = ["alpha", "beta_box", "gamma", "delta"];
        let mut ids = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let m = machine(ada.id, name, i as u8 + 1);
            ids.push(m.id);
            store.insert_machine(&m).await.unwrap();
        }
        let env = Environment {
            platform: "linux".into(), hostname: "alpha-host".into(), arch: "x64".into(),
            agent_version: "1".into(), capabilities: vec!["mcp".into()], max_sessions: 3,
            mac_addresses: vec!["02:00:00:00:00:01".into()],
            networks: vec![Ipv4Network { addr: [10, 0, 0, 2].into(), prefix: 24 }],
            ..Environment::default()
        };
        let now = clock::now();
        store.record_machine_hello(ids[0], &env, &["gpu".into(), "mcp".into()], now).await.unwrap();
        store.set_machine_status(ids[1], "connecting", now).await.unwrap();
        // Online long ago and never confirmed since: reads offline.
        let gamma_env = Environment { hostname: "gamma-host".into(), ..env.clone() };
        store.record_machine_hello(ids[2], &gamma_env, &[], now - Duration::minutes(10)).await.unwrap();

        let alpha = store.machine(ada.id, ids[0]).await.unwrap().unwrap();
        assert_eq!(alpha.hostname.as_deref(), Some("alpha-host"));
        assert_eq!(alpha.capabilities.0, vec!["gpu", "mcp"]);
        assert_eq!(alpha.max_sessions, 10, "hello does not change max_sessions");
        assert_eq!(alpha.networks.0, env.networks);
        assert_eq!(alpha.connected_at, Some(now));

        let names_of = |rows: &[Machine]| rows.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
        let (online, total) = store.machines_page(ada.id, &filter(Some("online"), None), 10, 0).await.unwrap();
        assert_eq!((names_of(&online), total), (vec!["alpha".to_owned()], 1));
        let (connecting, _) = store.machines_page(ada.id, &filter(Some("connecting"), None), 10, 0).await.unwrap();
        assert_eq!(names_of(&connecting), ["beta_box"]);
        let (offline, _) = store.machines_page(ada.id, &filter(Some("offline"), None), 10, 0).await.unwrap();
        assert_eq!(names_of(&offline), ["delta", "gamma"]);

        let (page, total) = store.machines_page(ada.id, &filter(None, None), 2, 2).await.unwrap();
        assert_eq!((names_of(&page), total), (vec!["delta".to_owned(), "gamma".to_owned()], 4));
        let (found, _) = store.machines_page(ada.id, &filter(None, Some("ALPHA-HOST")), 10, 0).await.unwrap();
        assert_eq!(names_of(&found), ["alpha"], "search covers the hostname, any case");
        let (found, _) = store.machines_page(ada.id, &filter(None, Some("a_b")), 10, 0).await.unwrap();
        assert_eq!(names_of(&found), ["beta_box"], "_ is literal, not a wildcard");

        store.record_machine_seen(ids[2], now).await.unwrap();
        let gamma = store.machine(ada.id, ids[2]).await.unwrap().unwrap();
        assert_eq!((gamma.status_at, gamma.last_seen_at), (now, Some(now)));
        store.set_machine_status(ids[2], "offline", now).await.unwrap();
        store.record_machine_seen(ids[2], now + Duration::seconds(1)).await.unwrap();
        let gamma = store.machine(ada.id, ids[2]).await.unwrap().unwrap();
        assert_eq!(gamma.status, "offline", "a late pong does not revive an offline machine");
    }

    async fn pairings_are_single_use_and_expired_ones_are_swept(db: TestDb) {
        let store = db.open().await;
        let now = clock::now();
        let pairing = |code: u8, expires_at| Pairing {
            code_hash: vec![code; 32], token_hash: vec![7; 32], hostname: Some("h".into()),
            platform: None, arch: None, created_at: now, expires_at,
        };
        store.insert_pairing(&pairing(1, now - Duration::seconds(1))).await.unwrap();
        store.insert_pairing(&pairing(2, now + Duration::minutes(5))).await.unwrap();
        assert_eq!(store.take_pairing(&[1; 32]).await.unwrap(), None, "swept");
        assert_eq!(store.take_pairing(&[2; 32]).await.unwrap().unwrap().token_hash, vec![7; 32]);
        assert_eq!(store.take_pairing(&[2; 32]).await.unwrap(), None, "single use");
    }

    async fn a_wait_ends_only_while_the_session_still_waits_for_it(db: TestDb) {
        let store = db.open().await;
        let ada = user("ada@example.com");
        store.insert_user(&ada).await.unwrap();
        let desk = machine(ada.id, "desk", 1);
        store.insert_machine(&desk).await.unwrap();
        let now = clock::now();
        let session = Session {
            id: Uuid::now_v7(), machine_id: desk.id, user_id: ada.id, mode: "interactive".into(),
            project_path: None, initial_prompt: None, status: SessionStatus::Running, cols: 80,
            rows: 24, exit_code: None, total_tokens: 0, total_cost: 0.0, ws_token_hash: vec![9; 32],
            last_seq: 0, started_at: Some(now), ended_at: None, created_at: now, updated_at: now,
            ws_token_parent: None, ws_token_write: false, waiting_reason: None,
            waiting_message: None, stop_reason: None, budget_tokens: None, budget_cost: None,
            budget_warned: false,
        };
        store.insert_session(&session).await.unwrap();
        let wait = async |reason: &str, message: &str| {
            store.set_session_waiting(session.id, SessionStatus::WaitingInput, Some(reason), Some(message), clock::now())
                .await.unwrap().unwrap()
        };

        // Answered while the dialog still shows: back to running, the wait cleared.
        wait("permission", "Claude needs your permission").await;
        let resumed = store.end_session_wait(session.id, "permission", clock::now()).await.unwrap().unwrap();
        assert_eq!((resumed.status, resumed.waiting_reason, resumed.waiting_message), (SessionStatus::Running, None, None));

        // The turn ended before the answer was recorded: that wait stands.
        wait("permission", "Claude needs your permission").await;
        wait("stop", "Claude finished its turn").await;
        assert_eq!(store.end_session_wait(session.id, "permission", clock::now()).await.unwrap(), None);
        let now = store.session_by_id(session.id).await.unwrap().unwrap();
        assert_eq!((now.status, now.waiting_reason.as_deref()), (SessionStatus::WaitingInput, Some("stop")));
    }
}

//! Accounts, tokens and sign-in (API §2), end to end on both stores, with a fake identity
//! provider and an SMTP sink on loopback.

use chrono::{DateTime, Utc};
use claudenest_e2e::{
    TEST_PASSWORD, TestApp, TestDb,
    fakes::{FakeIdentity, FakeIdp, SmtpSink},
    on_both_stores,
};
use reqwest::Method;
use serde_json::{Value, json};

fn registration(email: &str) -> Value {
    json!({"name": "Ada Lovelace", "email": email, "password": "analytical engine",
           "password_confirmation": "analytical engine"})
}

fn days_from_now(at: &Value) -> i64 {
    let at: DateTime<Utc> = at.as_str().unwrap().parse().unwrap();
    (at - Utc::now()).num_hours().div_euclid(24) + 1
}

/// Follows the redirect URL through the fake provider, like a browser, and returns the
/// callback path (with `code` and `state`) the provider sent it back to.
async fn approve_at_provider(app: &TestApp, redirect_url: &str) -> String {
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = no_redirects.get(redirect_url).send().await.unwrap();
    assert_eq!(answer.status(), 303, "{}", answer.text().await.unwrap());
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    location
        .strip_prefix(&app.base_url)
        .unwrap_or_else(|| panic!("callback {location} is not on {}", app.base_url))
        .to_owned()
}

async fn oauth_app(db: TestDb, idp: &FakeIdp) -> TestApp {
    let (google, github) = (idp.provider_settings(false), idp.provider_settings(true));
    TestApp::spawn_with(db, |c| {
        c.oauth.google = Some(google);
        c.oauth.github = Some(github);
    })
    .await
}

/// Sets the public URL to the server's own address once it is known.
async fn oauth_redirect(app: &TestApp, provider: &str) -> String {
    let reply = app
        .get(&format!("/api/auth/{provider}/redirect"), None)
        .await;
    reply.expect(200);
    let url = reply.body["data"]["redirect_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        url.contains("state=")
            && url.contains("code_challenge=")
            && url.contains("code_challenge_method=S256"),
        "{url}"
    );
    url
}

on_both_stores! {
    async fn register_login_me_logout(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let reply = app.post("/api/auth/register", None, registration("Ada@Example.com")).await;
        reply.expect(201);
        let data = &reply.body["data"];
        assert_eq!(data["user"]["email"], "ada@example.com");
        assert_eq!(data["user"]["name"], "Ada Lovelace");
        assert!(data["user"]["email_verified_at"].is_null());
        let first = data["token"].as_str().unwrap().to_owned();
        assert!(first.starts_with("cn_") && first.len() >= 43);
        assert_eq!(days_from_now(&data["expires_at"]), 30);

        let login = app.post("/api/auth/login", None,
            json!({"email": "ADA@example.com ", "password": "analytical engine"})).await;
        login.expect(200);
        let second = login.body["data"]["token"].as_str().unwrap().to_owned();
        assert_ne!(first, second);
        let remembered = app.post("/api/auth/login", None,
            json!({"email": "ada@example.com", "password": "analytical engine", "remember": true})).await;
        remembered.expect(200);
        assert_eq!(days_from_now(&remembered.body["data"]["expires_at"]), 365);

        let me = app.get("/api/auth/me", Some(&second)).await;
        me.expect(200);
        assert_eq!(me.body["data"]["user"]["id"], data["user"]["id"]);

        app.post("/api/auth/logout", Some(&second), json!({})).await.expect(200);
        let after = app.get("/api/auth/me", Some(&second)).await;
        after.expect(401);
        assert_eq!(after.error_code(), "AUTH_005");
        app.get("/api/auth/me", Some(&first)).await.expect(200);
    }

    async fn wrong_password_and_unknown_email_are_the_same_401(db: TestDb) {
        let app = TestApp::spawn(db).await;
        app.user_with_token("ada@example.com").await;
        let wrong = app.post("/api/auth/login", None,
            json!({"email": "ada@example.com", "password": "not the password"})).await;
        let unknown = app.post("/api/auth/login", None,
            json!({"email": "nobody@example.com", "password": TEST_PASSWORD})).await;
        for reply in [&wrong, &unknown] {
            reply.expect(401);
            assert_eq!(reply.error_code(), "AUTH_002");
        }
        assert_eq!(wrong.body["error"], unknown.body["error"]);
        app.post("/api/auth/login", None,
            json!({"email": "ada@example.com", "password": TEST_PASSWORD})).await.expect(200);
    }

    async fn registration_validates_every_field_and_stores_nothing_on_failure(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let reply = app.post("/api/auth/register", None,
            json!({"name": "A", "email": "not-an-email", "password": "short",
                   "password_confirmation": "different"})).await;
        reply.expect(422);
        assert_eq!(reply.error_code(), "VAL_001");
        let errors = reply.body["error"]["errors"].as_object().unwrap();
        for field in ["name", "email", "password", "password_confirmation"] {
            assert!(errors.contains_key(field), "{field} missing in {errors:?}");
        }
        let missing = app.post("/api/auth/register", None, json!({"email": "a@b.co"})).await;
        missing.expect(422);
        assert_eq!(missing.body["error"]["errors"]["name"][0], "The name field is required.");
        let wrong_type = app.post("/api/auth/register", None,
            json!({"name": 5, "email": "a@b.co", "password": "x", "password_confirmation": "x"})).await;
        wrong_type.expect(422);
        assert!(wrong_type.body["error"]["errors"]["name"].is_array());
        let malformed = app.post_raw("/api/auth/register", None, "{\"name\": ").await;
        malformed.expect(422);
        assert!(malformed.body["error"]["errors"]["body"].is_array());

        app.post("/api/auth/register", None, registration("ada@example.com")).await.expect(201);
        let taken = app.post("/api/auth/register", None, registration("ADA@example.com")).await;
        taken.expect(422);
        assert_eq!(taken.body["error"]["errors"]["email"][0], "The email has already been taken.");
        // The original account is untouched.
        app.post("/api/auth/login", None,
            json!({"email": "ada@example.com", "password": "analytical engine"})).await.expect(200);
    }

    async fn tokens_are_listed_created_scoped_and_revoked(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let (_, root) = app.user_with_token("ada@example.com").await;
        let (_, other) = app.user_with_token("bob@example.com").await;

        let created = app.post("/api/auth/tokens", Some(&root),
            json!({"name": "Mobile", "abilities": ["machines:read"], "expires_in_days": 90})).await;
        created.expect(201);
        let data = &created.body["data"];
        let limited = data["token"].as_str().unwrap().to_owned();
        assert_eq!(data["abilities"], json!(["machines:read"]));
        assert_eq!(days_from_now(&data["expires_at"]), 90);
        let limited_id = data["id"].as_str().unwrap().to_owned();

        let list = app.get("/api/auth/tokens", Some(&root)).await;
        list.expect(200);
        let items = list.body["data"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["name"], "Mobile");
        for item in items {
            assert!(item.get("token").is_none() && item.get("token_hash").is_none(), "{item}");
            assert_eq!(item["is_active"], true);
            for key in ["id", "abilities", "last_used_at", "expires_at", "created_at"] {
                assert!(item.get(key).is_some(), "{key}");
            }
        }
        assert!(items[1]["last_used_at"].is_string(), "the root token was used");

        // Abilities are enforced, and cannot be escalated.
        let denied = app.get("/api/auth/tokens", Some(&limited)).await;
        denied.expect(403);
        assert_eq!(denied.error_code(), "AUTH_006");
        app.get("/api/auth/me", Some(&limited)).await.expect(200);
        let reader = app.post("/api/auth/tokens", Some(&root),
            json!({"name": "reader", "abilities": ["tokens:read", "tokens:write"]})).await;
        reader.expect(201);
        let reader = reader.body["data"]["token"].as_str().unwrap().to_owned();
        let escalate = app.post("/api/auth/tokens", Some(&reader), json!({"name": "x", "abilities": ["*"]})).await;
        escalate.expect(403);
        assert_eq!(escalate.error_code(), "AUTH_006");

        for (body, field) in [
            (json!({"name": "x", "abilities": ["machines:admin"]}), "abilities"),
            (json!({"name": "", "abilities": ["*"]}), "name"),
            (json!({"name": "x", "expires_in_days": 0}), "expires_in_days"),
            (json!({"name": "x", "expires_in_days": "soon"}), "expires_in_days"),
            (json!({"abilities": ["*"]}), "name"),
        ] {
            let reply = app.post("/api/auth/tokens", Some(&root), body.clone()).await;
            reply.expect(422);
            assert!(reply.body["error"]["errors"][field].is_array(), "{body}: {}", reply.text);
        }

        // Another user's token id is "not found", and stays alive.
        let not_yours = app.call(Method::DELETE, &format!("/api/auth/tokens/{limited_id}"), Some(&other), None).await;
        not_yours.expect(404);
        assert_eq!(not_yours.error_code(), "AUTH_007");
        app.get("/api/auth/me", Some(&limited)).await.expect(200);
        app.call(Method::DELETE, "/api/auth/tokens/not-a-uuid", Some(&root), None).await.expect(422);

        app.call(Method::DELETE, &format!("/api/auth/tokens/{limited_id}"), Some(&root), None).await.expect(200);
        app.get("/api/auth/me", Some(&limited)).await.expect(401);
        let again = app.call(Method::DELETE, &format!("/api/auth/tokens/{limited_id}"), Some(&root), None).await;
        again.expect(404);
        let list = app.get("/api/auth/tokens", Some(&root)).await;
        let revoked = list.body["data"].as_array().unwrap().iter().find(|t| t["id"] == limited_id.as_str()).unwrap().clone();
        assert_eq!(revoked["is_active"], false);
    }

    async fn sign_in_endpoints_are_rate_limited_per_ip_and_login_per_account(db: TestDb) {
        let app = TestApp::spawn_with(db, |c| {
            c.rate_limits.auth_per_minute = 4;
            c.rate_limits.login_per_account_per_minute = 2;
        }).await;
        let bad = json!({"email": "ada@example.com", "password": "wrong password"});
        app.post("/api/auth/login", None, bad.clone()).await.expect(401);
        app.post("/api/auth/login", None, bad.clone()).await.expect(401);
        let account_limited = app.post("/api/auth/login", None, bad.clone()).await;
        account_limited.expect(429);
        assert_eq!(account_limited.error_code(), "RTE_001");
        assert_eq!(account_limited.header("x-ratelimit-remaining"), "1");
        let other = app.post("/api/auth/login", None, json!({"email": "bob@example.com", "password": "whatever1"})).await;
        other.expect(401);
        assert_eq!(other.header("x-ratelimit-remaining"), "0");
        let ip_limited = app.post("/api/auth/forgot-password", None, json!({"email": "bob@example.com"})).await;
        ip_limited.expect(429);
        assert!(ip_limited.header("retry-after").parse::<u64>().unwrap() >= 1);
        assert_eq!(ip_limited.header("x-ratelimit-limit"), "4");
    }

    async fn nobody_elsewhere_can_lock_an_account_and_invented_tokens_count_against_their_address(db: TestDb) {
        // Behind a proxy the operator trusts (the test client, on loopback), the forwarded
        // address is the client.
        let app = TestApp::spawn_with(db, |c| {
            c.rate_limits.login_per_account_per_minute = 2;
            c.rate_limits.api_per_minute = 5;
            c.rate_limits.trusted_proxies = vec!["127.0.0.1".into(), "::1".into()];
        }).await;
        let (_, token) = app.user_with_token("ada@example.com").await;
        let login_from = async |address: &str, password: &str| {
            let response = app.client.post(format!("{}/api/auth/login", app.base_url))
                .header("x-forwarded-for", address)
                .json(&json!({"email": "ada@example.com", "password": password}))
                .send().await.unwrap();
            response.status().as_u16()
        };
        // An attacker at one address fails until refused...
        assert_eq!(login_from("203.0.113.7", "wrong password").await, 401);
        assert_eq!(login_from("203.0.113.7", "wrong password").await, 401);
        assert_eq!(login_from("203.0.113.7", "wrong password").await, 429);
        // ...and the account's owner, elsewhere, still signs in.
        assert_eq!(login_from("198.51.100.20", claudenest_e2e::TEST_PASSWORD).await, 200);

        // Invented bearer tokens get no counters of their own: they count against the address,
        // which is refused once over the limit, while a real token keeps working.
        app.get("/api/auth/me", Some(&token)).await.expect(200);
        let limiter = app.state.api_limiter();
        let before = limiter.tracked();
        let mut statuses = Vec::new();
        for i in 0..50 {
            let fake = format!("cn_{i:0>40}");
            let response = app.client.get(format!("{}/api/auth/me", app.base_url)).bearer_auth(&fake)
                .header("x-forwarded-for", "203.0.113.9").send().await.unwrap();
            statuses.push(response.status().as_u16());
        }
        assert_eq!(&statuses[..5], &[401; 5]);
        assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
        assert!(limiter.tracked() <= before + 1, "{} keys for one address", limiter.tracked());
        app.get("/api/auth/me", Some(&token)).await.expect(200);
    }

    async fn oauth_creates_a_verified_account_and_signs_it_in_again(db: TestDb) {
        let idp = FakeIdp::start().await;
        let app = oauth_app(db, &idp).await;
        idp.sign_in_as(FakeIdentity { subject: "g-123".into(), email: "Grace@Example.com".into(),
                                      email_verified: true, name: "Grace Hopper".into() });
        let url = oauth_redirect(&app, "google").await;
        let callback = approve_at_provider(&app, &url).await;
        let reply = app.get(&callback, None).await;
        reply.expect(200);
        let user = &reply.body["data"]["user"];
        assert_eq!(user["email"], "grace@example.com");
        assert_eq!(user["name"], "Grace Hopper");
        assert_eq!(user["avatar_url"], "https://example.com/avatar.png");
        assert!(user["email_verified_at"].is_string());
        let token = reply.body["data"]["token"].as_str().unwrap();
        app.get("/api/auth/me", Some(token)).await.expect(200);

        // The state works once.
        let replay = app.get(&callback, None).await;
        replay.expect(422);
        assert!(replay.body["error"]["errors"]["state"].is_array());
        assert_eq!(idp.exchanges(), 1, "a replayed state never reaches the provider");

        // The same identity signs in to the same account.
        let url = oauth_redirect(&app, "google").await;
        let again = app.get(&approve_at_provider(&app, &url).await, None).await;
        again.expect(200);
        assert_eq!(again.body["data"]["user"]["id"], user["id"]);
    }

    async fn oauth_links_only_by_verified_email(db: TestDb) {
        let idp = FakeIdp::start().await;
        let app = oauth_app(db, &idp).await;
        // Someone registered Ada's address with a password before she ever came (nothing
        // proved the address was theirs).
        let (ada, squatter_token) = app.user_with_token("ada@example.com").await;

        idp.sign_in_as(FakeIdentity { subject: "77".into(), email: "ada@example.com".into(),
                                      email_verified: false, name: "Ada".into() });
        let url = oauth_redirect(&app, "github").await;
        let refused = app.get(&approve_at_provider(&app, &url).await, None).await;
        refused.expect(409);
        assert_eq!(refused.error_code(), "AUTH_008");

        idp.sign_in_as(FakeIdentity { subject: "77".into(), email: "ada@example.com".into(),
                                      email_verified: true, name: "Ada".into() });
        let url = oauth_redirect(&app, "github").await;
        let linked = app.get(&approve_at_provider(&app, &url).await, None).await;
        linked.expect(200);
        assert_eq!(linked.body["data"]["user"]["id"], ada.id.to_string());
        assert!(linked.body["data"]["user"]["email_verified_at"].is_string());
        assert_eq!(linked.body["data"]["user"]["avatar_url"], "https://example.com/octo.png");
        // The provider proved the address; the password nobody proved and every token made
        // with it are gone, so whoever registered first keeps no way in.
        let login = app.post("/api/auth/login", None, json!({"email": "ada@example.com", "password": TEST_PASSWORD})).await;
        login.expect(401);
        app.get("/api/auth/me", Some(&squatter_token)).await.expect(401);
        let token = linked.body["data"]["token"].as_str().unwrap();
        app.get("/api/auth/me", Some(token)).await.expect(200);
        // Once verified, later links leave the account as it is.
        idp.sign_in_as(FakeIdentity { subject: "78".into(), email: "ada@example.com".into(),
                                      email_verified: true, name: "Ada".into() });
        let url = oauth_redirect(&app, "google").await;
        app.get(&approve_at_provider(&app, &url).await, None).await.expect(200);
        app.get("/api/auth/me", Some(token)).await.expect(200);
    }

    async fn password_reset_by_mail_revokes_old_tokens(db: TestDb) {
        let smtp = SmtpSink::start(false).await;
        let url = smtp.url();
        let app = TestApp::spawn_with(db, |c| {
            c.mail.smtp_url = Some(claudenest::config::Secret::new(url));
            c.public_url = Some("https://nest.example.com".into());
        }).await;
        let (_, old_token) = app.user_with_token("ada@example.com").await;

        let unknown = app.post("/api/auth/forgot-password", None, json!({"email": "nobody@example.com"})).await;
        unknown.expect(200);
        let known = app.post("/api/auth/forgot-password", None, json!({"email": "Ada@example.com"})).await;
        known.expect(200);
        assert_eq!(unknown.body["data"], known.body["data"], "no account enumeration");
        let mails = smtp.messages();
        assert_eq!(mails.len(), 1, "only the real account gets mail");
        assert!(mails[0].to[0].contains("ada@example.com"));
        // Undo quoted-printable's soft line breaks and `=` escapes, if the mailer used them.
        let data = mails[0].data.replace("=\n", "").replace("=3D", "=");
        let token: String = data.split("this token: ").nth(1).unwrap()
            .chars().take_while(char::is_ascii_alphanumeric).collect();
        assert_eq!(token.len(), 48, "{data}");
        assert!(data.contains("https://nest.example.com/reset-password?token="), "{data}");

        let reset = |token: &str, email: &str| json!({"email": email, "token": token,
            "password": "a brand new password", "password_confirmation": "a brand new password"});
        let wrong = app.post("/api/auth/reset-password", None, reset("nope", "ada@example.com")).await;
        wrong.expect(400);
        assert_eq!(wrong.error_code(), "AUTH_004");
        app.user_with_token("bob@example.com").await;
        let other_address = app.post("/api/auth/reset-password", None, reset(&token, "bob@example.com")).await;
        other_address.expect(400);
        let short = app.post("/api/auth/reset-password", None,
            json!({"email": "ada@example.com", "token": token, "password": "x", "password_confirmation": "y"})).await;
        short.expect(422);

        app.post("/api/auth/reset-password", None, reset(&token, "ada@example.com")).await.expect(200);
        app.get("/api/auth/me", Some(&old_token)).await.expect(401);
        app.post("/api/auth/login", None, json!({"email": "ada@example.com", "password": TEST_PASSWORD})).await.expect(401);
        app.post("/api/auth/login", None, json!({"email": "ada@example.com", "password": "a brand new password"})).await.expect(200);
        let reused = app.post("/api/auth/reset-password", None, reset(&token, "ada@example.com")).await;
        reused.expect(400);
        assert_eq!(reused.error_code(), "AUTH_004");
    }

    async fn expired_reset_links_and_refusing_mail_servers_are_errors(db: TestDb) {
        let smtp = SmtpSink::start(true).await;
        let url = smtp.url();
        let app = TestApp::spawn_with(db, |c| {
            c.mail.smtp_url = Some(claudenest::config::Secret::new(url));
            c.auth.reset_token_minutes = 0;
        }).await;
        app.user_with_token("ada@example.com").await;
        let refused = app.post("/api/auth/forgot-password", None, json!({"email": "ada@example.com"})).await;
        refused.expect(400);
        assert_eq!(refused.error_code(), "AUTH_003");
        let invalid = app.post("/api/auth/forgot-password", None, json!({"email": "nope"})).await;
        invalid.expect(422);

        // The link was stored before sending failed; with a 0-minute lifetime it is dead anyway.
        let store = app.state.store();
        let user = store.user_by_email("ada@example.com").await.unwrap().unwrap();
        let secret = claudenest::domain::accounts::TokenSecret::generate("");
        let now = claudenest::domain::clock::now();
        store.insert_password_reset(&claudenest::store::PasswordReset {
            id: uuid::Uuid::now_v7(), user_id: user.id, token_hash: secret.hash.to_vec(),
            expires_at: now - chrono::Duration::seconds(1), used_at: None, created_at: now,
        }).await.unwrap();
        let expired = app.post("/api/auth/reset-password", None, json!({"email": "ada@example.com",
            "token": secret.plain, "password": "another password", "password_confirmation": "another password"})).await;
        expired.expect(400);
        assert_eq!(expired.error_code(), "AUTH_004");
    }
}

#[tokio::test]
async fn unknown_and_unconfigured_providers_answer_auth_001() {
    let app = TestApp::spawn(
        TestDb::create(claudenest_e2e::Backend::Sqlite)
            .await
            .unwrap(),
    )
    .await;
    for path in [
        "/api/auth/facebook/redirect",
        "/api/auth/facebook/callback?code=x&state=y",
        "/api/auth/google/redirect",
        "/api/auth/github/callback?code=x&state=y",
    ] {
        let reply = app.get(path, None).await;
        reply.expect(400);
        assert_eq!(reply.error_code(), "AUTH_001", "{path}");
    }
}

#[tokio::test]
async fn oauth_callback_needs_code_and_a_known_state() {
    let idp = FakeIdp::start().await;
    let app = oauth_app(
        TestDb::create(claudenest_e2e::Backend::Sqlite)
            .await
            .unwrap(),
        &idp,
    )
    .await;
    let missing = app.get("/api/auth/google/callback?state=abc", None).await;
    missing.expect(422);
    assert!(missing.body["error"]["errors"]["code"].is_array());
    let forged = app
        .get("/api/auth/google/callback?code=abc&state=forged", None)
        .await;
    forged.expect(422);
    // A state issued for one provider does not work for the other.
    idp.sign_in_as(FakeIdentity {
        subject: "1".into(),
        email: "x@example.com".into(),
        email_verified: true,
        name: "X".into(),
    });
    let url = oauth_redirect(&app, "google").await;
    let callback = approve_at_provider(&app, &url)
        .await
        .replace("/google/", "/github/");
    app.get(&callback, None).await.expect(422);
}

#[tokio::test]
async fn without_smtp_the_reset_link_is_logged_and_the_request_succeeds() {
    let app = TestApp::spawn(
        TestDb::create(claudenest_e2e::Backend::Sqlite)
            .await
            .unwrap(),
    )
    .await;
    app.user_with_token("ada@example.com").await;
    assert!(!app.state.mailer().is_configured());
    app.post(
        "/api/auth/forgot-password",
        None,
        json!({"email": "ada@example.com"}),
    )
    .await
    .expect(200);
}

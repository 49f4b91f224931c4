//! Registers the sqlite-vec extension with SQLite, so every connection opened afterwards has the
//! `vec0` virtual table and `vec_*` functions (used by the context/RAG store).
//!
//! This is the one place in the store that needs `unsafe`: SQLite's extension registration is a
//! C API.
#![allow(unsafe_code)]

use std::sync::Once;

static REGISTER: Once = Once::new();

/// Idempotent; must run before the first SQLite connection is opened.
pub fn register() {
    REGISTER.call_once(|| {
        // SAFETY: `sqlite3_vec_init` is the extension's entry point with exactly the signature
        // SQLite expects of an auto extension (`int (*)(sqlite3*, char**, const sqlite3_api_routines*)`);
        // the crate declares it as `fn()` only because it has no SQLite types. Both symbols are
        // linked statically into this binary (one bundled libsqlite3 through sqlx), and
        // `sqlite3_auto_extension` is thread-safe.
        let rc = unsafe {
            type EntryPoint = unsafe extern "C" fn(
                *mut libsqlite3_sys::sqlite3,
                *mut *mut std::os::raw::c_char,
                *const libsqlite3_sys::sqlite3_api_routines,
            ) -> std::os::raw::c_int;
            let init: EntryPoint = std::mem::transmute(sqlite_vec::sqlite3_vec_init as *const ());
            libsqlite3_sys::sqlite3_auto_extension(Some(init))
        };
        assert_eq!(
            rc,
            libsqlite3_sys::SQLITE_OK,
            "registering sqlite-vec failed"
        );
    });
}

/// Little-endian f32 bytes: how SQLite rows keep a vector, sqlite-vec's layout.
pub(crate) fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

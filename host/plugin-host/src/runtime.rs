//! The wasmtime host for plugins: one `Engine` per process, compiled components cached on disk
//! (authenticated: see [`super::cache`]), an `InstancePre` per component held in a bounded
//! in-memory cache, and a fresh `Store` for every call, dropped afterwards (so a trap or
//! timeout never leaves a broken instance behind).
//!
//! Every call runs under: an admission step (a total budget of concurrent calls, of which one
//! owner may hold only a fair share), an epoch deadline (the guest yields every tick and traps
//! at the deadline, so a spinning plugin neither blocks a runtime thread nor outlives its
//! time), a memory limit for the whole instance (every linear memory and table together), a
//! stack limit, a per-hostcall byte budget, caps on returned bytes and on log lines and bytes.
//! WASI has no ambient authority: no environment, arguments or stdio, no sockets; the
//! filesystem is the mounts both requested by the plugin and granted — which only an agent
//! gives, under roots its machine's owner allowed.
//!
//! Compiling is bounded too: components are inspected before compiling (too many functions or
//! too much code is refused), compiles run one at a time on one thread, and one that outlasts
//! its budget is refused.

use std::{
    collections::HashMap,
    hash::{Hash as _, Hasher as _},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    Trap, UpdateDeadline,
    component::{Component, HasSelf, Linker, ResourceTable},
};
use wasmtime_wasi::{
    FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView, p2::pipe::MemoryOutputPipe,
};

use super::{
    cache::DiskCache,
    grants::{Grants, NetPolicy},
    hosts::HostEntry,
    manifest::{self, Manifest, World},
    net,
};

use crate::bindings::{WitVersion, v0_1};
pub use crate::types::{
    Chunk, Content, Metadata, Processed, SummarizeOptions, Summary, Tool, ToolResult,
};
use v0_1::host as wit_host;

/// Limits applied to every call, and to the runtime as a whole.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    /// Memory one instance may hold: all its linear memories and tables together.
    pub memory_bytes: usize,
    pub stack_bytes: usize,
    /// Bytes a call may return (and copy to the host in one import call).
    pub output_bytes: usize,
    /// Log bytes a call may write; the rest is dropped (and counted).
    pub log_bytes: usize,
    /// Log lines a call may write.
    pub log_lines: usize,
    /// Bytes of an outbound HTTP response body.
    pub http_body_bytes: usize,
    /// Memory all concurrent calls may hold together: `total_memory_bytes / memory_bytes`
    /// calls run at once, the rest wait (up to `timeout`).
    pub total_memory_bytes: usize,
    /// Calls one owner (a user) may have running at once: a burst of one user's calls waits
    /// for its own share and never fills the runtime.
    pub calls_per_owner: usize,
    /// Longest a compile may take; longer is refused (the component is too big for this host).
    pub compile_timeout: Duration,
    /// Functions a component may define (over all its modules), checked before compiling.
    pub max_functions: usize,
    /// Bytes of code a component may hold, checked before compiling.
    pub max_code_bytes: usize,
    /// Compiled components kept in memory (least recently used leave first).
    pub loaded_components: usize,
    /// Compiled components kept on disk.
    pub cached_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            memory_bytes: 64 * 1024 * 1024,
            stack_bytes: 512 * 1024,
            output_bytes: 1024 * 1024,
            log_bytes: 64 * 1024,
            log_lines: 200,
            http_body_bytes: 4 * 1024 * 1024,
            total_memory_bytes: 512 * 1024 * 1024,
            calls_per_owner: 2,
            compile_timeout: Duration::from_secs(60),
            max_functions: 30_000,
            max_code_bytes: 24 * 1024 * 1024,
            loaded_components: 32,
            cached_files: 128,
        }
    }
}

impl Limits {
    /// Calls that may run at once: as many as fit the total memory budget.
    pub fn concurrent_calls(&self) -> usize {
        (self.total_memory_bytes / self.memory_bytes.max(1)).max(1)
    }
}

/// Why a call failed, in words for the API.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PluginError(pub String);

type CallResult<T> = Result<T, PluginError>;

/// A linked component, by WIT version and world: the one place that knows which generated
/// bindings a component was built against.
enum Pre {
    Mcp(v0_1::mcp::McpAdapterPre<PluginState>),
    Summarizer(v0_1::summarizer::SummarizerPre<PluginState>),
    Skills(v0_1::skills::SkillProcessorPre<PluginState>),
}

/// A compiled, linked component.
pub struct Loaded {
    pub sha256: String,
    /// The WIT version the component was built against (from its manifest).
    pub wit_version: WitVersion,
    pub manifest: Manifest,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    pre: Pre,
}

/// The per-call state a plugin's imports see.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    plugin: String,
    config: HashMap<String, String>,
    http: Vec<HostEntry>,
    net: Arc<NetPolicy>,
    http_body_bytes: usize,
    log_budget: usize,
    log_lines: usize,
    logs_dropped: usize,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Bytes a table element is counted as (a function reference and its metadata).
const TABLE_ELEMENT_BYTES: usize = 16;

/// The memory limit of one instance: every linear memory and table of every core instance in
/// it counts against one budget (a component can hold several), and the limiter remembers it
/// said no (for a clear error).
struct Limiter {
    budget: usize,
    used: usize,
    denied: bool,
}

impl Limiter {
    fn grow(&mut self, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let next = self.used.saturating_sub(current).saturating_add(desired);
        if next > self.budget {
            self.denied = true;
            wasmtime::bail!("memory limit reached");
        }
        self.used = next;
        Ok(true)
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(current, desired)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn instances(&self) -> usize {
        32
    }

    fn tables(&self) -> usize {
        32
    }

    fn memories(&self) -> usize {
        8
    }
}

/// A plugin's log line as one line: newlines and other control characters escaped, so a
/// plugin cannot forge lines of the log around it.
pub fn escape_log_line(message: &str, max_chars: usize) -> String {
    let mut line = String::with_capacity(message.len().min(max_chars));
    for c in message.chars().take(max_chars) {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

impl wit_host::Host for PluginState {
    async fn log(&mut self, level: wit_host::LogLevel, message: String) -> wasmtime::Result<()> {
        let line = escape_log_line(&message, 4096);
        if line.len() > self.log_budget || self.log_lines == 0 {
            self.logs_dropped += 1;
            return Ok(());
        }
        self.log_budget -= line.len();
        self.log_lines -= 1;
        let plugin = self.plugin.as_str();
        match level {
            wit_host::LogLevel::Trace => tracing::trace!(plugin, "{line}"),
            wit_host::LogLevel::Debug => tracing::debug!(plugin, "{line}"),
            wit_host::LogLevel::Info => tracing::info!(plugin, "{line}"),
            wit_host::LogLevel::Warn => tracing::warn!(plugin, "{line}"),
            wit_host::LogLevel::Error => tracing::error!(plugin, "{line}"),
        }
        Ok(())
    }

    async fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config.get(&key).cloned())
    }

    async fn http_fetch(
        &mut self,
        request: wit_host::HttpRequest,
    ) -> wasmtime::Result<Result<wit_host::HttpResponse, String>> {
        let request = net::Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        };
        Ok(
            net::fetch(&self.http, &self.net, self.http_body_bytes, request)
                .await
                .map(|r| wit_host::HttpResponse {
                    status: r.status,
                    headers: r.headers,
                    body: r.body,
                }),
        )
    }
}

/// Who may run a call now: a total budget of concurrent calls, of which each owner holds at
/// most a fair share. An owner waits for its own share first, so its queued calls never hold
/// places in the total.
struct Admission {
    total: Arc<Semaphore>,
    per_owner: usize,
    owners: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Owners tracked before idle ones are forgotten.
const OWNERS_TRACKED: usize = 1024;

impl Admission {
    fn new(total: usize, per_owner: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total)),
            per_owner: per_owner.clamp(1, total),
            owners: Mutex::default(),
        }
    }

    fn owner(&self, owner: &str) -> Arc<Semaphore> {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        if owners.len() >= OWNERS_TRACKED && !owners.contains_key(owner) {
            let idle = self.per_owner;
            owners.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < idle);
        }
        owners
            .entry(owner.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_owner)))
            .clone()
    }

    async fn admit(
        &self,
        owner: &str,
        wait: Duration,
    ) -> CallResult<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let deadline = tokio::time::Instant::now() + wait;
        let mine = tokio::time::timeout_at(deadline, self.owner(owner).acquire_owned())
            .await
            .map_err(|_| {
                PluginError(format!(
                    "too many plugin calls of yours at once (at most {} run together); try again",
                    self.per_owner
                ))
            })?
            .expect("never closed");
        let place = tokio::time::timeout_at(deadline, self.total.clone().acquire_owned())
            .await
            .map_err(|_| PluginError("the plugin runtime is busy; try again".into()))?
            .expect("never closed");
        Ok((mine, place))
    }
}

/// Compiled components in memory, least recently used evicted beyond the bound.
struct LoadedCache {
    bound: usize,
    tick: u64,
    entries: HashMap<String, (Arc<Loaded>, u64)>,
}

impl LoadedCache {
    fn get(&mut self, sha256: &str) -> Option<Arc<Loaded>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(sha256).map(|(loaded, used)| {
            *used = tick;
            loaded.clone()
        })
    }

    fn insert(&mut self, loaded: Arc<Loaded>) {
        self.tick += 1;
        self.entries
            .insert(loaded.sha256.clone(), (loaded, self.tick));
        while self.entries.len() > self.bound {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(sha, _)| sha.clone());
            match oldest {
                Some(sha) => self.entries.remove(&sha),
                None => break,
            };
        }
    }
}

/// Instantiates the component as world `$variant` in a fresh store and calls one export,
/// under every limit of [`PluginRuntime::run`].
macro_rules! call_export {
    ($runtime:expr, $loaded:expr, $grants:expr, $variant:ident,
     $interface:ident . $func:ident ( $($arg:expr),* )) => {
        $runtime.run($loaded, $grants, async |pre, store| {
            let Pre::$variant(pre) = pre else {
                wasmtime::bail!("the component is not a {}", stringify!($variant));
            };
            let instance = pre.instantiate_async(&mut *store).await?;
            instance.$interface().$func(&mut *store $(, $arg)*).await
        })
    };
}

/// How a runtime is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where compiled components are kept (`None`: compile on every load). The MAC key lives
    /// beside it as `<dir>.key`.
    pub cache_dir: Option<PathBuf>,
    pub limits: Limits,
    /// What the party running this runtime allows beyond tenants' HTTP grants.
    pub net: NetPolicy,
    /// Try the pooling allocator (falls back to on-demand when it cannot reserve memory).
    pub pooling: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cache_dir: None,
            limits: Limits::default(),
            net: NetPolicy::default(),
            pooling: true,
        }
    }
}

/// The plugin host of this process.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: Option<DiskCache>,
    loaded: Mutex<LoadedCache>,
    limits: Limits,
    net: Arc<NetPolicy>,
    admission: Admission,
    /// One compile at a time: installs cannot starve the machine of CPU and memory.
    compiles: Arc<Semaphore>,
    /// Whether the pooling allocator could be set up (else on-demand).
    pub pooling: bool,
    /// Plugin calls run here, not on the server's runtime: guests yield at every epoch tick,
    /// but a CPU-bound task that is always ready still delays a runtime's I/O polling, so
    /// spinning plugins must only ever slow other plugins.
    executor: Option<tokio::runtime::Runtime>,
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        // Dropped from async code (the app state), where a blocking shutdown would panic.
        if let Some(executor) = self.executor.take() {
            executor.shutdown_background();
        }
    }
}

impl PluginRuntime {
    pub fn new(options: Options) -> anyhow::Result<Arc<Self>> {
        let Options {
            cache_dir,
            limits,
            net,
            pooling: try_pooling,
        } = options;
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // One thread per compile (wasmtime's parallel-compilation feature is off): with
            // compiles one at a time, an install takes one core.
            .max_wasm_stack(limits.stack_bytes);
        let concurrent = limits.concurrent_calls();
        let mut pooling = PoolingAllocationConfig::default();
        // Room for every admitted call, with slack for calls finishing as others start.
        pooling
            .total_component_instances((concurrent * 4).max(16) as u32)
            .total_core_instances((concurrent * 16).max(64) as u32)
            .total_memories((concurrent * 8).max(32) as u32)
            .total_tables((concurrent * 16).max(64) as u32)
            .max_memory_size(limits.memory_bytes);
        let (engine, pooling) = if try_pooling {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
            match Engine::new(&config) {
                Ok(engine) => (engine, true),
                Err(err) => {
                    tracing::warn!(error = %err, "pooling allocator unavailable; allocating on demand");
                    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                    (Engine::new(&config)?, false)
                }
            }
        } else {
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            (Engine::new(&config)?, false)
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wit_host::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        let cache = match cache_dir {
            Some(dir) => {
                let cache = DiskCache::open(dir, limits.cached_files)?;
                cache.collect();
                Some(cache)
            }
            None => None,
        };
        // Epochs tick every 10 ms until the engine is gone.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("plugin-epochs".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })?;
        let executor = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("plugin-call")
            .enable_all()
            .build()?;
        Ok(Arc::new(Self {
            executor: Some(executor),
            engine,
            linker,
            cache,
            loaded: Mutex::new(LoadedCache {
                bound: limits.loaded_components.max(1),
                tick: 0,
                entries: HashMap::new(),
            }),
            admission: Admission::new(concurrent, limits.calls_per_owner),
            compiles: Arc::new(Semaphore::new(1)),
            limits,
            net: Arc::new(net),
            pooling,
        }))
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn net(&self) -> &NetPolicy {
        &self.net
    }

    pub fn sha256(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// A loaded component by sha256, if this process has it.
    pub fn get(&self, sha256: &str) -> Option<Arc<Loaded>> {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sha256)
    }

    /// Forgets a component: out of memory and off the disk (a deleted plugin leaves nothing).
    pub fn forget(&self, sha256: &str) {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .remove(sha256);
        if let Some(cache) = &self.cache {
            cache.remove(sha256);
        }
    }

    /// Where the compiled form of `sha256` is kept (for tests that plant one).
    pub fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        let cache = self.cache.as_ref()?;
        Some(cache.path(sha256, self.engine_hash()))
    }

    /// The component compiled by this runtime's engine, without a MAC (what an attacker with
    /// a copy of the engine could plant).
    pub fn precompile(&self, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
        Ok(self.engine.precompile_component(bytes)?.to_vec())
    }

    fn engine_hash(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        hasher.finish()
    }

    /// Inspects, compiles (or reads the compiled cache) and links a component, within the
    /// compile budget. Blocking work runs off the async threads.
    pub async fn load(self: &Arc<Self>, bytes: Vec<u8>) -> Result<Arc<Loaded>, PluginError> {
        let sha256 = Self::sha256(&bytes);
        if let Some(loaded) = self.get(&sha256) {
            return Ok(loaded);
        }
        let budget = self.limits.compile_timeout;
        let permit = tokio::time::timeout(budget, self.compiles.clone().acquire_owned())
            .await
            .map_err(|_| PluginError("the host is busy compiling other plugins; try again".into()))?
            .expect("never closed");
        let runtime = self.clone();
        // The permit goes with the thread: a compile that outlives its budget still holds the
        // one compile place until it ends, so refused compiles cannot pile up.
        let compiling = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            runtime.load_blocking(&bytes, sha256)
        });
        let loaded = match tokio::time::timeout(budget, compiling).await {
            Ok(joined) => joined.map_err(|e| PluginError(format!("loading failed: {e}")))??,
            Err(_) => {
                return Err(PluginError(format!(
                    "compiling took longer than {budget:?}: the component is too large for this host"
                )));
            }
        };
        let loaded = Arc::new(loaded);
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(loaded.clone());
        Ok(loaded)
    }

    fn load_blocking(&self, bytes: &[u8], sha256: String) -> Result<Loaded, PluginError> {
        // Checked before compiling: a foreign, incompatible or oversized component costs no
        // compile.
        let inspected = manifest::inspect(bytes).map_err(PluginError)?;
        if inspected.functions > self.limits.max_functions {
            return Err(PluginError(format!(
                "the component defines {} functions; this host compiles at most {}",
                inspected.functions, self.limits.max_functions
            )));
        }
        if inspected.code_bytes > self.limits.max_code_bytes {
            return Err(PluginError(format!(
                "the component holds {} bytes of code; this host compiles at most {}",
                inspected.code_bytes, self.limits.max_code_bytes
            )));
        }
        let component = self.compile(bytes, &sha256)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError(format!("the component cannot be linked: {e:#}")))?;
        let link_error = |e: wasmtime::Error| PluginError(format!("wrong world: {e:#}"));
        let wit_version = inspected.wit_version;
        let pre = match (wit_version, inspected.manifest.world) {
            (WitVersion::V0_1, World::McpAdapter) => {
                Pre::Mcp(v0_1::mcp::McpAdapterPre::new(instance_pre).map_err(link_error)?)
            }
            (WitVersion::V0_1, World::Summarizer) => Pre::Summarizer(
                v0_1::summarizer::SummarizerPre::new(instance_pre).map_err(link_error)?,
            ),
            (WitVersion::V0_1, World::SkillProcessor) => {
                Pre::Skills(v0_1::skills::SkillProcessorPre::new(instance_pre).map_err(link_error)?)
            }
        };
        Ok(Loaded {
            sha256,
            wit_version,
            manifest: inspected.manifest,
            exports: inspected.exports,
            imports: inspected.imports,
            pre,
        })
    }

    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<Component, PluginError> {
        let compile = || {
            Component::new(&self.engine, bytes)
                .map_err(|e| PluginError(format!("the component does not compile: {e:#}")))
        };
        let Some(cache) = &self.cache else {
            return compile();
        };
        let path = cache.path(sha256, self.engine_hash());
        if let Some(compiled) = cache.read(&path) {
            // SAFETY: `cache.read` returns only bytes whose MAC verifies under this process's
            // key, i.e. bytes `Component::serialize` of this engine configuration produced and
            // this cache wrote (the name carries the engine's compatibility hash, and wasmtime
            // checks its header as well). No plugin can reach the cache or its key.
            #[allow(unsafe_code)]
            match unsafe { Component::deserialize(&self.engine, &compiled) } {
                Ok(component) => return Ok(component),
                Err(err) => {
                    tracing::warn!(error = %err, "compiled plugin cache unreadable; recompiling")
                }
            }
        }
        let component = compile()?;
        if let Ok(serialized) = component.serialize() {
            cache.write(&path, &serialized);
        }
        Ok(component)
    }

    /// A fresh store for one call, with the plugin's grants and every limit set.
    fn store(&self, loaded: &Loaded, grants: &Grants) -> CallResult<Store<PluginState>> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(MemoryOutputPipe::new(4096))
            .stderr(MemoryOutputPipe::new(4096))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        for request in &loaded.manifest.capabilities.filesystem {
            let Some(mount) = grants.mounts.iter().find(|m| m.name == request.name) else {
                continue;
            };
            let perms = if mount.writable_for(request) {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&mount.host_path, format!("/{}", request.name), perms)
                .map_err(|e| {
                    PluginError(format!(
                        "cannot open the granted directory {}: {e}",
                        mount.host_path.display()
                    ))
                })?;
        }
        let http = if loaded.manifest.capabilities.http.is_empty() {
            Vec::new()
        } else {
            grants.http.clone()
        };
        let state = PluginState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                budget: self.limits.memory_bytes,
                used: 0,
                denied: false,
            },
            plugin: loaded.manifest.name.clone(),
            config: grants.config.clone(),
            http,
            net: self.net.clone(),
            http_body_bytes: self.limits.http_body_bytes,
            log_budget: self.limits.log_bytes,
            log_lines: self.limits.log_lines,
            logs_dropped: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(self.limits.output_bytes + 64 * 1024);
        let deadline = Instant::now() + self.limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        Ok(store)
    }

    /// Runs `call` with a fresh instance once admitted, and turns every failure into a clear
    /// message.
    async fn run<T, F>(&self, loaded: &Loaded, grants: &Grants, call: F) -> CallResult<T>
    where
        F: AsyncFnOnce(&Pre, &mut Store<PluginState>) -> wasmtime::Result<T>,
    {
        let _admitted = self
            .admission
            .admit(&grants.owner, self.limits.timeout)
            .await?;
        let mut store = self.store(loaded, grants)?;
        // The epoch deadline is the real limit; this one also covers time spent in host calls.
        let backstop = self.limits.timeout + Duration::from_secs(1);
        let outcome = tokio::time::timeout(backstop, call(&loaded.pre, &mut store)).await;
        let state = store.data();
        if state.logs_dropped > 0 {
            tracing::warn!(plugin = %state.plugin, dropped = state.logs_dropped, "plugin log lines over the cap were dropped");
        }
        let err = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => err,
            Err(_) => return Err(self.timed_out()),
        };
        Err(self.explain(&err, state.limiter.denied))
    }

    fn timed_out(&self) -> PluginError {
        PluginError(format!(
            "the plugin ran past its {:?} deadline and was stopped",
            self.limits.timeout
        ))
    }

    fn explain(&self, err: &wasmtime::Error, memory_denied: bool) -> PluginError {
        if memory_denied {
            return PluginError(format!(
                "the plugin exceeded its memory limit of {} MiB and was stopped",
                self.limits.memory_bytes / (1024 * 1024)
            ));
        }
        if err.downcast_ref::<Trap>().is_some() {
            metrics::counter!("claudenest_plugin_traps_total").increment(1);
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => self.timed_out(),
            Some(Trap::StackOverflow) => PluginError("the plugin exhausted its stack".into()),
            Some(trap) => PluginError(format!("the plugin trapped: {trap}")),
            None => {
                let text = format!("{err:#}");
                if text.contains("fuel") {
                    PluginError(format!(
                        "the plugin returned more than {} bytes",
                        self.limits.output_bytes
                    ))
                } else {
                    PluginError(format!("the plugin failed: {text}"))
                }
            }
        }
    }

    fn check_output(&self, bytes: usize) -> CallResult<()> {
        if bytes > self.limits.output_bytes {
            return Err(PluginError(format!(
                "the plugin returned {bytes} bytes, more than the {} byte cap",
                self.limits.output_bytes
            )));
        }
        Ok(())
    }

    /// Runs a plugin call on the plugin executor and waits for it.
    async fn on_executor<T: Send + 'static>(
        &self,
        call: impl Future<Output = CallResult<T>> + Send + 'static,
    ) -> CallResult<T> {
        let executor = self
            .executor
            .as_ref()
            .expect("the executor lives as long as the runtime");
        let outcome = executor
            .spawn(call)
            .await
            .map_err(|e| PluginError(format!("the plugin call was lost: {e}")))
            .and_then(|r| r);
        let label = if outcome.is_ok() { "ok" } else { "failed" };
        metrics::counter!("claudenest_plugin_calls_total", "outcome" => label).increment(1);
        outcome
    }

    /// Instantiates the component in a fresh store and drops it: the fixed cost every call
    /// pays before the plugin's code runs (measured by the plugins benchmark).
    pub async fn instantiate(self: &Arc<Self>, loaded: &Arc<Loaded>) -> CallResult<()> {
        let (rt, loaded) = (self.clone(), loaded.clone());
        self.on_executor(async move {
            rt.run(&loaded, &Grants::default(), async |pre, store| {
                match pre {
                    Pre::Mcp(pre) => {
                        pre.instantiate_async(&mut *store).await?;
                    }
                    Pre::Summarizer(pre) => {
                        pre.instantiate_async(&mut *store).await?;
                    }
                    Pre::Skills(pre) => {
                        pre.instantiate_async(&mut *store).await?;
                    }
                }
                Ok(())
            })
            .await
        })
        .await
    }

    pub async fn list_tools(
        self: &Arc<Self>,
        loaded: &Arc<Loaded>,
        grants: &Grants,
    ) -> CallResult<Vec<Tool>> {
        let (rt, loaded, grants) = (self.clone(), loaded.clone(), grants.clone());
        self.on_executor(async move {
            let tools = call_export!(
                rt,
                &loaded,
                &grants,
                Mcp,
                claudenest_plugin_tools.call_list_tools()
            )
            .await?;
            let tools: Vec<Tool> = tools.into_iter().map(Tool::from).collect();
            let size: usize = tools
                .iter()
                .map(|t| t.name.len() + t.description.len() + t.input_schema.len())
                .sum();
            rt.check_output(size)?;
            Ok(tools)
        })
        .await
    }

    /// `Ok(Err(message))` is the plugin refusing the call (unknown tool, bad arguments).
    pub async fn call_tool(
        self: &Arc<Self>,
        loaded: &Arc<Loaded>,
        grants: &Grants,
        name: &str,
        arguments: &str,
    ) -> CallResult<Result<ToolResult, String>> {
        let (rt, loaded, grants) = (self.clone(), loaded.clone(), grants.clone());
        let (name, arguments) = (name.to_owned(), arguments.to_owned());
        self.on_executor(async move {
            let result = call_export!(
                rt,
                &loaded,
                &grants,
                Mcp,
                claudenest_plugin_tools.call_call_tool(&name, &arguments)
            )
            .await?
            .map(ToolResult::from);
            if let Ok(result) = &result {
                let size: usize = result.content.iter().map(Content::size).sum();
                rt.check_output(size)?;
            }
            Ok(result)
        })
        .await
    }

    pub async fn summarize(
        self: &Arc<Self>,
        loaded: &Arc<Loaded>,
        grants: &Grants,
        chunks: &[Chunk],
        options: SummarizeOptions,
    ) -> CallResult<Result<Summary, String>> {
        let max_length = options.max_length;
        let (rt, loaded, grants) = (self.clone(), loaded.clone(), grants.clone());
        let chunks: Vec<v0_1::summarizer::exports::claudenest::plugin::summarize::Chunk> =
            chunks.iter().map(Into::into).collect();
        self.on_executor(async move {
            let result = call_export!(
                rt,
                &loaded,
                &grants,
                Summarizer,
                claudenest_plugin_summarize.call_summarize(&chunks, options.into())
            )
            .await?
            .map(Summary::from);
            if let Ok(summary) = &result {
                rt.check_output(summary.text.len() + summary.used.len() * 4)?;
                let chars = summary.text.chars().count();
                if chars > max_length as usize {
                    return Err(PluginError(format!(
                        "the plugin returned a summary of {chars} characters, more than the \
                         {max_length} asked for"
                    )));
                }
            }
            Ok(result)
        })
        .await
    }

    pub async fn process_skill(
        self: &Arc<Self>,
        loaded: &Arc<Loaded>,
        grants: &Grants,
        path: &str,
        content: &str,
    ) -> CallResult<Result<Processed, String>> {
        let (rt, loaded, grants) = (self.clone(), loaded.clone(), grants.clone());
        let (path, content) = (path.to_owned(), content.to_owned());
        self.on_executor(async move {
            let result = call_export!(
                rt,
                &loaded,
                &grants,
                Skills,
                claudenest_plugin_skills.call_process(&path, &content)
            )
            .await?
            .map(Processed::from);
            if let Ok(processed) = &result {
                let m = &processed.metadata;
                let size = processed.content.len()
                    + m.name.len()
                    + m.description.len()
                    + processed.warnings.iter().map(String::len).sum::<usize>();
                rt.check_output(size)?;
            }
            Ok(result)
        })
        .await
    }
}

/// A plugin's tool as MCP `tools/list` shows one.
pub fn tool_json(t: Tool) -> Value {
    let schema: Value = serde_json::from_str(&t.input_schema).unwrap_or(json!({"type": "object"}));
    json!({"name": t.name, "description": t.description, "inputSchema": schema})
}

/// A tool's result as MCP `tools/call` answers (`content`, `isError`).
pub fn result_json(result: ToolResult) -> Value {
    let content: Vec<Value> = result
        .content
        .into_iter()
        .map(|c| match c {
            Content::Text(text) => json!({"type": "text", "text": text}),
            Content::Json(text) => json!({"type": "text", "text": text, "json": serde_json::from_str::<Value>(&text).ok()}),
            Content::Image { data, mime_type } => {
                json!({"type": "image", "data": data, "mimeType": mime_type})
            }
        })
        .collect();
    json!({"content": content, "isError": result.is_error})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_limited_for_the_whole_instance() {
        let mut limiter = Limiter {
            budget: 100,
            used: 0,
            denied: false,
        };
        // Two memories of one instance, each under the budget alone.
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(0, 30, None).unwrap());
        assert!(limiter.memory_growing(0, 20, None).is_err());
        assert!(limiter.denied);
        // Growing one memory counts only the growth; tables count too.
        let mut limiter = Limiter {
            budget: 100,
            used: 0,
            denied: false,
        };
        assert!(limiter.memory_growing(0, 50, None).unwrap());
        assert!(limiter.memory_growing(50, 80, None).unwrap());
        assert!(limiter.table_growing(0, 1, None).unwrap());
        assert!(limiter.table_growing(1, 2, None).is_err());
    }

    #[test]
    fn log_lines_cannot_forge_other_lines() {
        let line = escape_log_line("ok\n2026-12-04T00:00:00Z ERROR forged\r\x1b[2J", 4096);
        assert!(!line.contains('\n') && !line.contains('\r') && !line.contains('\x1b'));
        assert!(line.starts_with("ok\\n2026"), "{line}");
        assert_eq!(escape_log_line("é€😀 plain", 3), "é€😀");
    }

    #[tokio::test]
    async fn one_owner_gets_a_fair_share_and_others_still_run() {
        let admission = Admission::new(4, 2);
        let wait = Duration::from_millis(50);
        let a1 = admission.admit("a", wait).await.unwrap();
        let _a2 = admission.admit("a", wait).await.unwrap();
        let refused = admission.admit("a", wait).await.unwrap_err();
        assert!(refused.0.contains("of yours"), "{}", refused.0);
        // Another owner is not held up by the first one's burst.
        let _b1 = admission.admit("b", wait).await.unwrap();
        let _b2 = admission.admit("b", wait).await.unwrap();
        // The total is full now: a third owner waits, then gives up.
        let busy = admission.admit("c", wait).await.unwrap_err();
        assert!(busy.0.contains("busy"), "{}", busy.0);
        drop(a1);
        let _c = admission.admit("c", wait).await.unwrap();
    }
}

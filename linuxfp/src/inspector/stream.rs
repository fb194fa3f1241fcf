// SPDX-License-Identifier: MIT OR Apache-2.0
//! The watching thread: it lives in the namespace, owns the sockets, folds
//! every event into its own [`KernelState`] and sends debounced snapshots
//! down a bounded channel.
//!
//! Memory stays bounded whatever the event rate or the consumer's speed:
//! events are folded as they arrive (a storm of 10k routes is 10k map
//! updates, not 10k queued messages), and at most `depth` snapshots wait in
//! the channel plus one pending, which newer snapshots replace.

use std::{
    io,
    os::fd::AsRawFd,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::{Stream, StreamExt, channel::mpsc};

use super::{
    InspectError, InspectorEvent, Options,
    decode::{self},
    dump,
    firewall::Firewall,
    nftables::Ruleset,
    socket::{RTNL_GROUPS, RtnlSocket},
    sysctl,
};
use crate::{
    netns::NetnsRef,
    state::{KernelState, NetEvent},
};

/// How long the thread sleeps at most, so it notices a dropped stream.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// Datagrams read in one go before deadlines are checked again.
const READ_BUDGET: usize = 4096;

/// The events of one namespace, as a `Stream`. Dropping it stops the
/// inspector thread (within 100 ms) and closes its sockets.
pub struct InspectorStream {
    rx: mpsc::Receiver<InspectorEvent>,
    stop: Arc<AtomicBool>,
}

impl Stream for InspectorStream {
    type Item = InspectorEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_next_unpin(cx)
    }
}

impl Drop for InspectorStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the thread; returns once the initial dump is done (it is the
/// stream's first item) or failed.
pub(crate) fn spawn(netns: NetnsRef, opts: Options) -> Result<InspectorStream, InspectError> {
    let (tx, rx) = mpsc::channel(opts.depth.saturating_sub(1));
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), InspectError>>();
    let thread_stop = stop.clone();
    std::thread::Builder::new()
        .name("linuxfp-inspect".into())
        .spawn(move || {
            let setup = netns
                .enter_on_this_thread()
                .map_err(InspectError::from)
                .and_then(|()| Watcher::open(opts));
            match setup {
                Ok(w) => {
                    let _ = ready_tx.send(Ok(()));
                    w.run(tx, &thread_stop);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| InspectError::io("spawn inspector thread", e))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(InspectorStream { rx, stop }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(InspectError::io(
            "inspector thread",
            io::Error::other("exited while starting"),
        )),
    }
}

/// What the events read in one round call for.
#[derive(Default)]
struct Followups {
    /// Events were lost: re-read everything.
    overrun: bool,
    /// The kernel may have flushed routes without telling (IPv4 on link
    /// down or address removal): re-read routes.
    routes: bool,
    /// Links or netconf changed: re-read sysctls.
    sysctls: bool,
    /// Number of events folded.
    events: usize,
}

struct Watcher {
    events: RtnlSocket,
    dumper: RtnlSocket,
    firewall: Firewall,
    state: KernelState,
    opts: Options,
    /// The ruleset a re-read replaced, freed only once the snapshot with
    /// its successor is on its way: freeing 10,000 decoded rules takes
    /// milliseconds the controller should not wait for.
    retired: Option<Arc<Ruleset>>,
}

impl Watcher {
    fn open(opts: Options) -> Result<Self, InspectError> {
        // Subscribe before the initial dump so no change falls between.
        let events = RtnlSocket::open(&RTNL_GROUPS, opts.rx_buffer)?;
        events.set_non_blocking()?;
        let mut w = Watcher {
            events,
            dumper: RtnlSocket::open(&[], None)?,
            firewall: Firewall::open_watching()?,
            state: KernelState::default(),
            opts,
            retired: None,
        };
        w.state = full_dump(&mut w.dumper, &w.firewall)?;
        Ok(w)
    }

    fn run(mut self, mut tx: mpsc::Sender<InspectorEvent>, stop: &AtomicBool) {
        let mut pending = Some(InspectorEvent::Snapshot(Arc::new(self.state.clone())));
        let mut dirty: Option<Instant> = None;
        let mut resynced = false;
        let mut need_resync = false;
        let mut last_event = Instant::now();
        let mut last_sysctl = Instant::now();
        let mut last_emit: Option<Instant> = None;
        loop {
            if stop.load(Ordering::Relaxed) || tx.is_closed() {
                tracing::debug!("inspector stream dropped; thread exits");
                return;
            }
            if let Some(ev) = pending.take() {
                match tx.try_send(ev) {
                    Ok(()) => drop(self.retired.take()),
                    Err(e) if e.is_full() => pending = Some(e.into_inner()),
                    Err(_) => return,
                }
            }
            let timeout = match dirty {
                Some(_) => self.opts.debounce.saturating_sub(last_event.elapsed()),
                None if pending.is_some() => Duration::from_millis(10),
                None => self.opts.sysctl_poll.saturating_sub(last_sysctl.elapsed()),
            }
            .min(STOP_CHECK);
            self.wait(timeout);

            let f = self.read_events();
            need_resync |= f.overrun;
            let mut changed = f.events > 0;
            if need_resync {
                match self.resync() {
                    Ok(()) => {
                        need_resync = false;
                        resynced = true;
                        changed = true;
                        last_sysctl = Instant::now();
                    }
                    Err(e) => tracing::warn!(error = %e, "re-dump after overrun failed; retrying"),
                }
            } else {
                if f.routes {
                    changed |= self.refresh_routes();
                }
                if self.firewall.drain() {
                    changed |= self.refresh_firewall();
                }
                if f.sysctls || last_sysctl.elapsed() >= self.opts.sysctl_poll {
                    changed |= self.refresh_sysctls();
                    last_sysctl = Instant::now();
                }
            }
            if changed {
                last_event = Instant::now();
                dirty.get_or_insert(last_event);
            }
            // Leading edge: the first change after a quiet spell goes out at
            // once (everything readable has been read); changes that follow
            // it within `debounce` wait for quiet (or `max_delay`), so a
            // storm becomes a few snapshots.
            let idle = last_emit.is_none_or(|t: Instant| t.elapsed() >= self.opts.debounce);
            if let Some(since) = dirty
                && (idle
                    || last_event.elapsed() >= self.opts.debounce
                    || since.elapsed() >= self.opts.max_delay)
            {
                last_emit = Some(Instant::now());
                let snap = Arc::new(self.state.clone());
                let was_resync = resynced || matches!(pending, Some(InspectorEvent::Resynced(_)));
                pending = Some(if was_resync {
                    InspectorEvent::Resynced(snap)
                } else {
                    InspectorEvent::Snapshot(snap)
                });
                resynced = false;
                dirty = None;
            }
        }
    }

    fn wait(&self, timeout: Duration) {
        let mut fds = vec![libc::pollfd {
            fd: self.events.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(fd) = self.firewall.event_fd() {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is a valid, initialised array of `fds.len()` pollfd
        // for the duration of the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::warn!(error = %e, "poll on inspector sockets failed");
                std::thread::sleep(timeout.min(STOP_CHECK));
            }
        }
    }

    /// Reads and folds pending events.
    fn read_events(&mut self) -> Followups {
        let mut f = Followups::default();
        for _ in 0..READ_BUDGET {
            let datagram = match self.events.recv() {
                Ok(d) => d,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    tracing::info!("rtnetlink socket overrun: events lost, re-dumping");
                    f.overrun = true;
                    return f;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return f,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "recv on the rtnetlink event socket failed; re-dumping");
                    f.overrun = true;
                    return f;
                }
            };
            for m in decode::messages(datagram) {
                for e in decode::decode(&m) {
                    match &e {
                        NetEvent::NewLink(new) => {
                            let went_down = self
                                .state
                                .links
                                .get(&new.ifindex)
                                .is_some_and(|old| old.admin_up && !new.admin_up);
                            f.routes |= went_down;
                            f.sysctls = true;
                        }
                        NetEvent::DelLink { .. } => f.sysctls = true,
                        NetEvent::DelAddress(a) if a.address.is_ipv4() => f.routes = true,
                        NetEvent::NewNetconf(_) | NetEvent::DelNetconf(_) => f.sysctls = true,
                        _ => {}
                    }
                    self.state.apply(e);
                    f.events += 1;
                }
            }
        }
        f
    }

    /// Discards what is queued (it may predate the lost events and must
    /// not be replayed over the fresh dump), then re-reads everything.
    fn resync(&mut self) -> Result<(), InspectError> {
        loop {
            match self.events.recv() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(InspectError::io("recv(rtnetlink events)", e)),
            }
        }
        self.firewall.drain();
        self.state = full_dump(&mut self.dumper, &self.firewall)?;
        Ok(())
    }

    fn refresh_routes(&mut self) -> bool {
        let mut changed = false;
        for family in [4, 6] {
            match dump::dump_routes(&mut self.dumper, family) {
                Ok(routes) => {
                    let before = self.state.routes.clone();
                    self.state.replace_routes(family, routes);
                    changed |= before != self.state.routes;
                }
                Err(e) => tracing::warn!(error = %e, family, "re-reading routes failed"),
            }
        }
        changed
    }

    fn refresh_firewall(&mut self) -> bool {
        let started = Instant::now();
        let read = self.firewall.ruleset();
        tracing::debug!(
            read_ms = started.elapsed().as_secs_f64() * 1e3,
            "inspector: re-read the nf_tables ruleset"
        );
        match read {
            Ok(r) if r != *self.state.nft => {
                let old = Arc::clone(&self.state.nft);
                self.state.apply(NetEvent::Ruleset(r));
                // Another one still waiting (the snapshot did not go out
                // yet) is freed now.
                self.retired = Some(old);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "re-reading the nf_tables ruleset failed");
                false
            }
        }
    }

    fn refresh_sysctls(&mut self) -> bool {
        let mut changed = false;
        let s = sysctl::read(&self.state);
        if s != self.state.sysctls {
            self.state.apply(NetEvent::Sysctls(s));
            changed = true;
        }
        let t = sysctl::legacy_tables();
        if t != self.state.legacy_tables {
            self.state.apply(NetEvent::LegacyTables(t));
            changed = true;
        }
        changed
    }
}

/// Everything, read fresh: rtnetlink tables, sysctls, legacy tables, the
/// firewall.
pub(crate) fn full_dump(
    sock: &mut RtnlSocket,
    firewall: &Firewall,
) -> Result<KernelState, InspectError> {
    let mut state = dump::dump_state(sock)?;
    let s = sysctl::read(&state);
    state.apply(NetEvent::Sysctls(s));
    state.apply(NetEvent::LegacyTables(sysctl::legacy_tables()));
    state.apply(NetEvent::Ruleset(firewall.ruleset()?));
    Ok(state)
}

//! Real traffic between namespaces, bounded in count and time: `ping` and
//! `iperf3`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{
    error::{Error, Result},
    netns::Netns,
};

/// What `ping` reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingStats {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Echo replies received.
    pub received: u32,
}

impl PingStats {
    /// True if every request was answered (and at least one was sent).
    pub fn all_answered(&self) -> bool {
        self.transmitted > 0 && self.received == self.transmitted
    }
}

/// Seconds between echo requests: fast, but far from a flood.
const PING_INTERVAL: &str = "0.05";

/// Sends `count` echo requests (one every 50 ms, each given 1 s for its
/// reply) from `from` to `dst` (IPv4 or IPv6) and counts the replies. A
/// lost reply is an answer (`received < transmitted`), not an error.
pub fn ping(from: &Netns, dst: &str, count: u32) -> Result<PingStats> {
    let count_arg = count.to_string();
    let argv = [
        "ping",
        "-n",
        "-q",
        "-c",
        &count_arg,
        "-i",
        PING_INTERVAL,
        "-W",
        "1",
        dst,
    ];
    // With -c and no -w, ping stops after `count` requests plus one -W for
    // the last reply; the kill after `timeout` is only a backstop.
    let timeout = Duration::from_secs(u64::from(count) / 20 + 10);
    let done = from.output(&argv, timeout)?;
    match parse_ping(&done.stdout) {
        Some(stats) => Ok(stats),
        None => {
            let command = argv.join(" ");
            // No summary: ping could not send at all (no route, bad address).
            done.clone().checked(from.name(), &command)?;
            Err(Error::Parse {
                netns: from.name().to_string(),
                command,
                detail: format!("no summary line in {:?}", done.stdout),
            })
        }
    }
}

fn parse_ping(stdout: &str) -> Option<PingStats> {
    let line = stdout.lines().find(|l| l.contains("packets transmitted"))?;
    let mut parts = line.split(',');
    let first_number = |part: Option<&str>| part?.split_whitespace().next()?.parse().ok();
    Some(PingStats {
        transmitted: first_number(parts.next())?,
        received: first_number(parts.next())?,
    })
}

/// An `iperf3` run: a one-off server in one namespace, a client in another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iperf3 {
    /// How long the client sends (`-t`).
    pub seconds: u32,
    /// The server's port (`-p`); each server lives in its own namespace,
    /// so the default rarely needs changing.
    pub port: u16,
    /// Parallel streams (`-P`).
    pub streams: u32,
    /// UDP at this many bits per second (`-u -b`) instead of TCP.
    pub udp_bitrate: Option<u64>,
}

impl Default for Iperf3 {
    fn default() -> Self {
        Self {
            seconds: 3,
            port: 5201,
            streams: 1,
            udp_bitrate: None,
        }
    }
}

/// What an `iperf3` run measured at the receiver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Received bits per second.
    pub bits_per_second: f64,
    /// Bytes received.
    pub bytes: u64,
    /// The measured interval in seconds.
    pub seconds: f64,
    /// TCP retransmissions by the sender.
    pub retransmits: Option<u64>,
    /// UDP datagrams lost, in percent.
    pub lost_percent: Option<f64>,
}

impl Throughput {
    /// Received gigabits per second.
    pub fn gbps(&self) -> f64 {
        self.bits_per_second / 1e9
    }
}

impl Iperf3 {
    /// Starts the server in `server` (listening on every address), waits
    /// until it listens, runs the client in `client` towards `server_addr`
    /// and returns the receiver's view. Both processes are gone when this
    /// returns, whatever happened.
    pub fn run(&self, server: &Netns, server_addr: &str, client: &Netns) -> Result<Throughput> {
        let port = self.port.to_string();
        let seconds = self.seconds.to_string();
        let streams = self.streams.to_string();
        let bitrate = self.udp_bitrate.map(|b| b.to_string());
        let srv = server.spawn(&["iperf3", "-s", "-1", "-p", &port])?;
        wait_listening(server, self.port, Duration::from_secs(5))?;
        let mut argv = vec![
            "iperf3",
            "-c",
            server_addr,
            "-p",
            &port,
            "-t",
            &seconds,
            "-P",
            &streams,
            "-J",
            "--connect-timeout",
            "3000",
        ];
        if let Some(b) = &bitrate {
            argv.extend(["-u", "-b", b.as_str()]);
        }
        let command = argv.join(" ");
        let timeout = Duration::from_secs(u64::from(self.seconds) + 20);
        let done = client.output(&argv, timeout)?;
        // The one-off server exits after the test; the guard reaps it or
        // kills it if it hangs.
        drop(srv);
        let json: Value = serde_json::from_str(&done.stdout).map_err(|source| Error::Json {
            netns: client.name().to_string(),
            command: command.clone(),
            source,
        })?;
        if let Some(error) = json.get("error").and_then(Value::as_str) {
            return Err(Error::Command {
                netns: client.name().to_string(),
                command,
                status: done.status,
                stderr: error.to_string(),
            });
        }
        done.checked(client.name(), &command)?;
        parse_iperf3(&json).ok_or_else(|| Error::Parse {
            netns: client.name().to_string(),
            command,
            detail: "no end.sum_received (or end.sum) with bits_per_second".into(),
        })
    }
}

fn parse_iperf3(json: &Value) -> Option<Throughput> {
    let end = json.get("end")?;
    let received = end.get("sum_received").or_else(|| end.get("sum"))?;
    Some(Throughput {
        bits_per_second: received.get("bits_per_second")?.as_f64()?,
        bytes: received.get("bytes")?.as_u64()?,
        seconds: received.get("seconds")?.as_f64()?,
        retransmits: end
            .get("sum_sent")
            .and_then(|s| s.get("retransmits"))
            .and_then(Value::as_u64),
        lost_percent: received.get("lost_percent").and_then(Value::as_f64),
    })
}

/// Waits until something in `ns` listens on TCP `port`.
pub fn wait_listening(ns: &Netns, port: u16, timeout: Duration) -> Result<()> {
    let filter = format!(":{port}");
    let deadline = Instant::now() + timeout;
    loop {
        if !ns
            .exec(&["ss", "-H", "-l", "-t", "-n", "sport", "=", &filter])?
            .trim()
            .is_empty()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::NotReady {
                netns: ns.name().to_string(),
                what: format!("a TCP listener on port {port}"),
                timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summaries_are_parsed() {
        let ok = "PING 10.2.0.2 (10.2.0.2) 56(84) bytes of data.\n\n--- 10.2.0.2 ping statistics ---\n\
                  3 packets transmitted, 3 received, 0% packet loss, time 102ms\n\
                  rtt min/avg/max/mdev = 0.030/0.041/0.056/0.011 ms\n";
        assert_eq!(
            parse_ping(ok),
            Some(PingStats {
                transmitted: 3,
                received: 3
            })
        );
        let lost = "--- fd02::2 ping statistics ---\n5 packets transmitted, 0 received, +5 errors, 100% packet loss, time 210ms\n";
        let stats = parse_ping(lost).expect("summary");
        assert_eq!((stats.transmitted, stats.received), (5, 0));
        assert!(!stats.all_answered());
        assert_eq!(parse_ping("connect: Network is unreachable\n"), None);
        assert!(
            !PingStats {
                transmitted: 0,
                received: 0
            }
            .all_answered()
        );
    }

    #[test]
    fn iperf3_reports_are_parsed() {
        let tcp: Value = serde_json::from_str(
            r#"{"start":{},"intervals":[],"end":{
                "sum_sent":{"start":0,"end":1.0,"seconds":1.0,"bytes":2783969280,"bits_per_second":2.2e10,"retransmits":8,"sender":true},
                "sum_received":{"start":0,"end":1.0,"seconds":1.000253,"bytes":2783969280,"bits_per_second":22266120911.4,"sender":true}}}"#,
        )
        .expect("json");
        let t = parse_iperf3(&tcp).expect("tcp");
        assert_eq!(t.bytes, 2783969280);
        assert_eq!(t.retransmits, Some(8));
        assert_eq!(t.lost_percent, None);
        assert!((t.gbps() - 22.266).abs() < 0.001);

        let udp: Value = serde_json::from_str(
            r#"{"end":{"sum":{"seconds":1.0,"bytes":10,"bits_per_second":80.0,"lost_percent":0},
                "sum_received":{"seconds":1.0,"bytes":9,"bits_per_second":72.0,"lost_percent":10.0}}}"#,
        )
        .expect("json");
        let u = parse_iperf3(&udp).expect("udp");
        assert_eq!((u.bytes, u.lost_percent), (9, Some(10.0)));

        let old: Value = serde_json::from_str(
            r#"{"end":{"sum":{"seconds":1.0,"bytes":10,"bits_per_second":80.0}}}"#,
        )
        .expect("json");
        assert_eq!(parse_iperf3(&old).map(|t| t.bytes), Some(10));
        assert_eq!(parse_iperf3(&serde_json::json!({"end": {}})), None);
    }
}

//! The quadlet files in containers/quadlet/: podman 4.3 here has no quadlet,
//! and quadlet skips a whole unit on one unknown key, so every key is read
//! and checked here. The `podman run` lines quadlet makes of them are what
//! tests/container.rs (systemd inside) and tests/direct.rs (handoff as the
//! command) run.

use std::collections::BTreeMap;
use std::path::Path;

/// `[Container]` keys of quadlet in podman 5.0 to 5.4 (Debian 13 has 5.4),
/// from its `supportedContainerKeys`, less those added later
/// (`ReloadCmd`, `ReloadSignal`, ...): only what the files may use.
const CONTAINER_KEYS: &[&str] = &[
    "AddCapability",
    "AddDevice",
    "Annotation",
    "AutoUpdate",
    "ContainerName",
    "DNS",
    "DropCapability",
    "Environment",
    "EnvironmentFile",
    "EnvironmentHost",
    "Exec",
    "ExposeHostPort",
    "HealthCmd",
    "HealthInterval",
    "HealthOnFailure",
    "HealthRetries",
    "HealthStartPeriod",
    "HealthTimeout",
    "HostName",
    "Image",
    "Label",
    "LogDriver",
    "Mount",
    "Network",
    "NoNewPrivileges",
    "Notify",
    "PodmanArgs",
    "PublishPort",
    "Pull",
    "ReadOnly",
    "RunInit",
    "StopTimeout",
    "Timezone",
    "User",
    "Volume",
    "WorkingDir",
];

/// systemd keys the files use, by section (a typo would be ignored by
/// systemd with only a warning).
const SYSTEMD_KEYS: &[(&str, &[&str])] = &[
    (
        "Unit",
        &["Description", "Wants", "After", "Requires", "Documentation"],
    ),
    ("Service", &["ExecReload", "Restart", "TimeoutStopSec"]),
    ("Install", &["WantedBy"]),
    (
        "Socket",
        &[
            "ListenStream",
            "ListenDatagram",
            "FileDescriptorName",
            "Backlog",
            "Service",
        ],
    ),
];

type Unit = BTreeMap<String, Vec<(String, String)>>;

fn parse(path: &Path) -> Unit {
    let text = std::fs::read_to_string(path).unwrap();
    let mut unit = Unit::new();
    let mut section = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_owned());
            unit.entry(name.to_owned()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{}:{}: not key=value: {line}", path.display(), n + 1));
        let section = section
            .as_ref()
            .unwrap_or_else(|| panic!("{}:{}: key before any section", path.display(), n + 1));
        unit.get_mut(section)
            .unwrap()
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
    unit
}

fn value<'a>(unit: &'a Unit, section: &str, key: &str) -> &'a str {
    unit.get(section)
        .and_then(|kv| kv.iter().find(|(k, _)| k == key))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key}= in [{section}]"))
}

fn files() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("containers/quadlet");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_key_of_every_quadlet_file_is_known() {
    let files = files();
    assert_eq!(files.len(), 5, "{files:?}");
    for path in files {
        let unit = parse(&path);
        for (section, keys) in &unit {
            for (key, _) in keys {
                let known = if section == "Container" {
                    CONTAINER_KEYS.contains(&key.as_str())
                } else {
                    SYSTEMD_KEYS
                        .iter()
                        .find(|(s, _)| s == section)
                        .is_some_and(|(_, ks)| ks.contains(&key.as_str()))
                };
                assert!(
                    known,
                    "{}: [{section}] {key}= is not a known key",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn both_modes_reload_the_service_inside_and_drain_before_the_kill() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("containers/quadlet");
    let inside = parse(&dir.join("handoff.container"));
    let name = value(&inside, "Container", "ContainerName");
    assert_eq!(
        value(&inside, "Service", "ExecReload"),
        format!("/usr/bin/podman exec {name} systemctl reload handoff.service")
    );
    assert!(value(&inside, "Container", "PodmanArgs").contains("--systemd=always"));

    let sa = parse(&dir.join("handoff-sa.container"));
    let name = value(&sa, "Container", "ContainerName");
    assert_eq!(
        value(&sa, "Service", "ExecReload"),
        format!("/usr/bin/podman kill --signal HUP {name}")
    );
    assert_eq!(value(&sa, "Container", "Exec"), "handoff");
    assert_eq!(value(&sa, "Container", "Network"), "none");
    // The hardening tests/direct.rs runs with (podman::DIRECT_HARDENING).
    for (key, value_) in [
        ("User", "handoff"),
        ("DropCapability", "all"),
        ("ReadOnly", "true"),
        ("NoNewPrivileges", "true"),
    ] {
        assert_eq!(value(&sa, "Container", key), value_, "[Container] {key}");
    }
    let socket = parse(&dir.join("handoff-sa.socket"));
    assert_eq!(value(&socket, "Socket", "FileDescriptorName"), "http");
    assert_eq!(value(&sa, "Unit", "Requires"), "handoff-sa.socket");

    for unit in [&inside, &sa] {
        // The image is built here (containers/build.sh), never pulled.
        assert_eq!(value(unit, "Container", "Pull"), "never");
        assert_eq!(
            value(unit, "Container", "Image"),
            "localhost/handoff:latest"
        );
        assert_eq!(value(unit, "Container", "Notify"), "true");
        // podman waits longer than the drain (30 s), systemd longer still.
        let stop: u32 = value(unit, "Container", "StopTimeout").parse().unwrap();
        let systemd: u32 = value(unit, "Service", "TimeoutStopSec")
            .trim_end_matches('s')
            .parse()
            .unwrap();
        assert!(30 < stop && stop < systemd, "{stop} {systemd}");
    }
}

/// The direct mode's optional HTTPS socket starts the same service, is named
/// as handoff serves TLS, and the lines that give the service both sockets
/// and the certificate are in handoff-sa.container, to uncomment.
#[test]
fn the_direct_modes_https_socket_pairs_with_its_container() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("containers/quadlet");
    let socket = parse(&dir.join("handoff-sa-https.socket"));
    assert_eq!(value(&socket, "Socket", "FileDescriptorName"), "https");
    assert_eq!(value(&socket, "Socket", "Service"), "handoff-sa.service");
    let text = std::fs::read_to_string(dir.join("handoff-sa.container")).unwrap();
    for line in [
        "#Sockets=handoff-sa.socket handoff-sa-https.socket",
        "#Environment=HANDOFF__TLS__CERTIFICATE=/etc/handoff/tls/fullchain.pem",
        "#Environment=HANDOFF__TLS__KEY=/etc/handoff/tls/key.pem",
        "#Volume=/etc/handoff-sa/tls:/etc/handoff/tls:ro",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?}");
    }
    // Uncommented, each is a key quadlet and systemd know.
    assert!(CONTAINER_KEYS.contains(&"Volume") && CONTAINER_KEYS.contains(&"Environment"));
}

/// HTTP/3 in both modes, on the HTTPS port over UDP. The direct mode's QUIC
/// socket is a unit of its own (a socket unit's `FileDescriptorName=` names
/// all its sockets), named `quic`, a datagram socket that starts the same
/// service, and the line that adds it to the service's `Sockets=` is in
/// handoff-sa.container, to uncomment. Systemd inside: the UDP port to
/// publish, beside the TCP one.
#[test]
fn http3_gets_the_host_udp_socket_in_both_modes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("containers/quadlet");
    let quic = parse(&dir.join("handoff-sa-quic.socket"));
    let https = parse(&dir.join("handoff-sa-https.socket"));
    assert_eq!(value(&quic, "Socket", "FileDescriptorName"), "quic");
    assert_eq!(value(&quic, "Socket", "Service"), "handoff-sa.service");
    assert_eq!(
        value(&quic, "Socket", "ListenDatagram"),
        value(&https, "Socket", "ListenStream")
    );
    assert!(
        !quic["Socket"].iter().any(|(k, _)| k == "ListenStream"),
        "{quic:?}"
    );
    assert_eq!(value(&quic, "Install", "WantedBy"), "sockets.target");
    let sa = std::fs::read_to_string(dir.join("handoff-sa.container")).unwrap();
    // Sockets= extends the list: HTTPS first, then HTTP/3.
    for line in [
        "#Sockets=handoff-sa.socket handoff-sa-https.socket",
        "#Sockets=handoff-sa-quic.socket",
    ] {
        assert!(sa.lines().any(|l| l == line), "no {line:?}");
    }
    let inside = std::fs::read_to_string(dir.join("handoff.container")).unwrap();
    for line in [
        "#PublishPort=127.0.0.1:8443:8443",
        "#PublishPort=127.0.0.1:8443:8443/udp",
    ] {
        assert!(inside.lines().any(|l| l == line), "no {line:?}");
    }
    assert!(CONTAINER_KEYS.contains(&"PublishPort"));
}

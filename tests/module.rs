//! The NixOS module, evaluated as NixOS evaluates it: nixpkgs' real `lib`
//! and systemd unit code (the subset in the nixpkgs-eval archive) render
//! `nix/module.nix` into the unit files a NixOS host would get
//! (nix/eval/module.nix). One app, two apps, every assertion, and the
//! rough edges a NixOS user met: each case's units and failed assertions
//! checked. The units must also say what `containers/units/` says.
//!
//! Needs `nix-instantiate` (Debian's nix-bin) and the nixpkgs subset
//! (tests/nixpkgs/mod.rs).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod nixpkgs;
mod podman;

use nixpkgs::nixpkgs;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Evaluates the module with `configuration` (a NixOS module, as Nix text).
fn eval(nixpkgs: &Path, configuration: &str) -> Result<Value, String> {
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(root().join("nix/eval/module.nix"))
        .arg("--arg")
        .arg("nixpkgs")
        .arg(nixpkgs)
        .arg("--arg")
        .arg("configuration")
        .arg(configuration)
        // Debian's nix-bin names a build group that need not exist; nothing
        // is built here.
        .env("NIX_CONFIG", "build-users-group =")
        .output()
        .expect("nix-instantiate (Debian: nix-bin)");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("JSON from nix-instantiate"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn eval_ok(nixpkgs: &Path, configuration: &str) -> Value {
    eval(nixpkgs, configuration)
        .unwrap_or_else(|e| panic!("{configuration}\nfailed to evaluate:\n{e}"))
}

fn failed(v: &Value) -> Vec<String> {
    v["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect()
}

fn unit<'a>(v: &'a Value, name: &str) -> &'a str {
    v["units"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no unit {name}: {}", v["units"]))
}

/// `key=value` lines of `section` in unit text: values by key, in order.
fn section(text: &str, name: &str) -> BTreeMap<String, Vec<String>> {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{name}]");
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            let (k, v) = line.split_once('=').unwrap_or((line, ""));
            keys.entry(k.to_owned()).or_default().push(v.to_owned());
        }
    }
    keys
}

/// systemd's spellings of one value: booleans and seconds.
fn normal(value: &str) -> String {
    match value {
        "yes" => "true".to_owned(),
        "no" => "false".to_owned(),
        v if v.ends_with('s') && v[..v.len() - 1].parse::<u64>().is_ok() => {
            v[..v.len() - 1].to_owned()
        }
        v => v.to_owned(),
    }
}

const ENABLE: &str = "{ services.handoff.enable = true; }";
const HELLO: &str = r#"{ pkgs, ... }: {
  services.handoff.enable = true;
  services.handoff.apps.hello = { package = pkgs.hello; listen = [ "8081" ]; openFirewall = true; };
}"#;

#[test]
fn the_reference_service_renders_the_units_of_containers_units() {
    let Some(nixpkgs) = nixpkgs("the_reference_service_renders_the_units_of_containers_units")
    else {
        return;
    };
    let v = eval_ok(nixpkgs, ENABLE);
    assert_eq!(failed(&v), Vec::<String>::new());
    let service = section(unit(&v, "handoff.service"), "Service");
    let ours = section(
        &std::fs::read_to_string(root().join("containers/units/handoff.service")).unwrap(),
        "Service",
    );
    // The same binary and configuration file, wherever each lives.
    let bin = "/nix/store/00000000000000000000000000000000-handoff/bin/handoff";
    let conf = "/nix/store/00000000000000000000000000000000-handoff.toml";
    for (key, values) in &ours {
        // The Debian unit sets FDSTORE= for systemd 252; NixOS's systemd
        // sets it from FileDescriptorStoreMax= itself, and adds PATH.
        // And paces retries 1 s apart (systemd 252 has no RestartSteps=).
        if key == "Environment" || key == "RestartSec" {
            continue;
        }
        let expected: Vec<String> = values
            .iter()
            .map(|v| {
                normal(v)
                    .replace("/usr/local/bin/handoff", bin)
                    .replace("/etc/handoff/handoff.toml", conf)
            })
            .collect();
        assert_eq!(service.get(key), Some(&expected), "[Service] {key}");
    }
    // What only NixOS has: a switch reloads, and the fd store outlives a
    // restart.
    for (key, value) in [
        ("X-ReloadIfChanged", "true"),
        ("X-StopIfChanged", "false"),
        ("FileDescriptorStorePreserve", "restart"),
        // Retries that back off (systemd 254+): 100 ms to a minute.
        ("RestartSec", "100ms"),
        ("RestartSteps", "5"),
        ("RestartMaxDelaySec", "1min"),
    ] {
        assert_eq!(
            service.get(key),
            Some(&vec![value.to_owned()]),
            "[Service] {key}"
        );
    }
    // A failing service is retried, never left to fail its socket: no
    // start limit, no exit status exempt from Restart=.
    let unit_section = section(unit(&v, "handoff.service"), "Unit");
    assert_eq!(unit_section["StartLimitIntervalSec"], ["0"]);
    assert!(
        !service.contains_key("RestartPreventExitStatus"),
        "{service:?}"
    );
    let socket = section(unit(&v, "handoff.socket"), "Socket");
    let ours = section(
        &std::fs::read_to_string(root().join("containers/units/handoff.socket")).unwrap(),
        "Socket",
    );
    assert_eq!(socket, ours);
    assert_eq!(
        section(unit(&v, "handoff.socket"), "Install")["WantedBy"],
        ["sockets.target"]
    );
}

#[test]
fn two_apps_get_their_own_units_settings_and_ports() {
    let Some(nixpkgs) = nixpkgs("two_apps_get_their_own_units_settings_and_ports") else {
        return;
    };
    let v = eval_ok(nixpkgs, HELLO);
    assert_eq!(failed(&v), Vec::<String>::new());
    let hello = section(unit(&v, "hello.service"), "Service");
    assert_eq!(
        hello["ExecStart"],
        [
            "/nix/store/00000000000000000000000000000000-hello/bin/hello --config /nix/store/00000000000000000000000000000000-hello.toml"
        ]
    );
    assert_eq!(hello["RuntimeDirectory"], ["hello"]);
    assert_eq!(
        section(unit(&v, "hello.service"), "Unit")["Requires"],
        ["hello.socket"]
    );
    assert_eq!(
        section(unit(&v, "hello.socket"), "Socket")["ListenStream"],
        ["8081"]
    );
    assert_eq!(
        section(unit(&v, "handoff.socket"), "Socket")["ListenStream"],
        ["8080"]
    );
    assert_eq!(v["firewall"], serde_json::json!([8081]));
    // A longer drain or a lame duck lengthens the stop timeout.
    let v = eval_ok(
        nixpkgs,
        r#"{ pkgs, ... }: { services.handoff.apps.hello = { package = pkgs.hello;
            settings.server = { drain_timeout = 10; shutdown_delay = 5; }; }; }"#,
    );
    assert_eq!(
        section(unit(&v, "hello.service"), "Service")["TimeoutStopSec"],
        ["30"]
    );
}

#[test]
fn every_assertion_names_the_app_and_the_option() {
    let Some(nixpkgs) = nixpkgs("every_assertion_names_the_app_and_the_option") else {
        return;
    };
    let cases = [
        (
            r#"{ pkgs, ... }: { services.handoff.apps.a = { package = pkgs.hello; listen = [ ]; }; }"#,
            "services.handoff.apps.a.listen must name at least one socket",
        ),
        (
            r#"{ pkgs, ... }: { services.handoff.apps.a = { package = pkgs.hello; listen = [ "/run/a/http.sock" ]; openFirewall = true; }; }"#,
            "services.handoff.apps.a.openFirewall is set, but its listen has no TCP port",
        ),
        (
            r#"{ pkgs, ... }: { services.handoff.apps.a = { package = pkgs.hello; settings.server.listen = "0.0.0.0:80"; }; }"#,
            "services.handoff.apps.a.settings.server.listen has no effect",
        ),
        (
            r#"{ pkgs, ... }: { services.handoff.apps.a = { package = pkgs.hello; environmentFile = "/nix/store/x-a.env"; }; }"#,
            "services.handoff.apps.a.environmentFile is in the Nix store",
        ),
        (
            r#"{ pkgs, ... }: { services.handoff.apps = { a = { package = pkgs.hello; listen = [ "8080" ]; }; b = { package = pkgs.hello; listen = [ "8080" ]; }; }; }"#,
            "8080 (a) and 8080 (b)",
        ),
        (
            r#"{ pkgs, ... }: { services.handoff.apps.a = { package = pkgs.hello; tls.listen = [ 443 ]; }; }"#,
            "services.handoff.apps.a.tls.listen is set: HTTPS needs tls.acmeHost, or tls.certificate and tls.key",
        ),
        (
            r#"{ pkgs, ... }: { services.handoff.apps.a = { package = pkgs.hello; tls = { listen = [ 443 ]; acmeHost = "a.org"; certificate = "/c.pem"; }; }; security.acme.certs."a.org".webroot = "/w"; }"#,
            "services.handoff.apps.a.tls: set tls.acmeHost or tls.certificate and tls.key, not both",
        ),
        (
            r#"{ pkgs, ... }: { services.handoff.apps.a = { package = pkgs.hello; tls = { listen = [ 443 ]; certificate = "/c.pem"; key = "/nix/store/x-key.pem"; }; }; }"#,
            "services.handoff.apps.a.tls.key is in the Nix store",
        ),
        (
            r#"{ pkgs, ... }: { services.handoff.apps.a = { package = pkgs.hello; listen = [ "443" ]; tls = { listen = [ "0.0.0.0:443" ]; acmeHost = "a.org"; }; }; security.acme.certs."a.org".webroot = "/w"; }"#,
            "443 (a) and 0.0.0.0:443 (a)",
        ),
        (
            r#"{ pkgs, ... }: { services.handoff.apps.a = { package = pkgs.hello; tls.quicListen = [ 443 ]; }; }"#,
            "services.handoff.apps.a.tls.quicListen is set: HTTP/3 needs tls.acmeHost, or tls.certificate and tls.key",
        ),
        (
            r#"{ pkgs, ... }: { services.handoff.apps.a = { package = pkgs.hello; tls = { quicListen = [ "/run/a/quic.sock" ]; certificate = "/c.pem"; key = "/k.pem"; }; }; }"#,
            "services.handoff.apps.a.tls.quicListen: \"/run/a/quic.sock\" is not a port or address:port",
        ),
        (
            r#"{ pkgs, ... }: { services.handoff.apps.a = { package = pkgs.hello; tls = { quicListen = [ 443 "0.0.0.0:443" ]; certificate = "/c.pem"; key = "/k.pem"; }; }; }"#,
            "443/udp (a) and 0.0.0.0:443/udp (a)",
        ),
    ];
    for (configuration, message) in cases {
        let v = eval_ok(nixpkgs, configuration);
        let failed = failed(&v);
        assert!(
            failed.len() == 1 && failed[0].contains(message),
            "{configuration}\nexpected one failed assertion with {message:?}, got {failed:#?}"
        );
    }
}

/// "8080" (IPv6 and IPv4) and "0.0.0.0:8080" cannot both bind: the
/// assertion compares what is bound, not the strings.
#[test]
fn listen_entries_that_bind_the_same_port_are_refused_whatever_their_spelling() {
    let Some(nixpkgs) =
        nixpkgs("listen_entries_that_bind_the_same_port_are_refused_whatever_their_spelling")
    else {
        return;
    };
    let two = |a: &str, b: &str| {
        format!(
            r#"{{ pkgs, ... }}: {{ services.handoff.apps = {{ a = {{ package = pkgs.hello; listen = [ {a} ]; }}; b = {{ package = pkgs.hello; listen = [ {b} ]; }}; }}; }}"#
        )
    };
    for (a, b) in [
        (r#""8080""#, r#""0.0.0.0:8080""#),
        (r#""8080""#, r#""[::]:8080""#),
        (r#""8080""#, r#""127.0.0.1:8080""#),
        (r#""0.0.0.0:8080""#, r#""127.0.0.1:8080""#),
        (r#""[::]:8080""#, r#""10.0.0.1:8080""#),
        (r#"8080"#, r#""8080""#),
        (r#""/run/x.sock""#, r#""/run/x.sock""#),
    ] {
        let v = eval_ok(nixpkgs, &two(a, b));
        let failed = failed(&v);
        assert!(
            failed.len() == 1 && failed[0].contains("bind the same socket"),
            "{a} and {b}: {failed:#?}"
        );
    }
    for (a, b) in [
        (r#""127.0.0.1:8080""#, r#""127.0.0.2:8080""#),
        (r#""0.0.0.0:8080""#, r#""[::1]:8080""#),
        (r#""8080""#, r#""8081""#),
        (r#""/run/a.sock""#, r#""/run/b.sock""#),
    ] {
        let v = eval_ok(nixpkgs, &two(a, b));
        assert_eq!(failed(&v), Vec::<String>::new(), "{a} and {b}");
    }
}

/// TCP and UDP ports are apart: HTTPS and HTTP/3 on one port is the usual
/// setup, and a plain TCP port beside a UDP one of the same number binds
/// both. Two UDP entries on one port do clash, whatever their spelling:
/// both would bind (systemd sets SO_REUSEADDR) and one would take the
/// other's datagrams.
#[test]
fn tcp_and_udp_on_one_port_are_two_sockets_and_two_udp_entries_clash() {
    let name = "tcp_and_udp_on_one_port_are_two_sockets_and_two_udp_entries_clash";
    let Some(nixpkgs) = nixpkgs(name) else {
        return;
    };
    let app = |name: &str, listen: &str, tls: &str, quic: &str| {
        format!(
            r#"{name} = {{ package = pkgs.hello; listen = [ {listen} ]; tls = {{ listen = [ {tls} ]; quicListen = [ {quic} ]; certificate = "/c.pem"; key = "/k.pem"; }}; }};"#
        )
    };
    let two = |a: String, b: String| {
        format!("{{ pkgs, ... }}: {{ services.handoff.apps = {{ {a} {b} }}; }}")
    };
    for (a, b) in [
        // HTTPS and HTTP/3 on one port, spelled alike or not.
        (app("a", r#""8080""#, "443", "443"), String::new()),
        (
            app("a", r#""8080""#, "443", r#""0.0.0.0:443""#),
            String::new(),
        ),
        // A plain TCP port of one app, the same UDP port of another.
        (app("a", "443", "", ""), app("b", "8081", "", "443")),
        // Two UDP addresses that do not overlap.
        (
            app("a", "8080", "", r#""127.0.0.1:443""#),
            app("b", "8081", "", r#""127.0.0.2:443""#),
        ),
    ] {
        let v = eval_ok(nixpkgs, &two(a.clone(), b.clone()));
        assert_eq!(failed(&v), Vec::<String>::new(), "{a} {b}");
    }
    for (a, b, message) in [
        (
            app("a", "8080", "", "443"),
            app("b", "8081", "", r#""0.0.0.0:443""#),
            "443/udp (a) and 0.0.0.0:443/udp (b)",
        ),
        (
            app("a", "8080", "", r#""[::]:443""#),
            app("b", "8081", "", r#""10.0.0.1:443""#),
            "[::]:443/udp (a) and 10.0.0.1:443/udp (b)",
        ),
    ] {
        let v = eval_ok(nixpkgs, &two(a.clone(), b.clone()));
        let failed = failed(&v);
        assert!(
            failed.len() == 1
                && failed[0].contains("bind the same socket")
                && failed[0].contains(message),
            "{a} {b}: expected {message:?}, got {failed:#?}"
        );
    }
}

/// `services.handoff.*` are defaults of the entry `apps.handoff`: a
/// definition there replaces them, key by key, instead of conflicting or
/// being appended to.
#[test]
fn the_reference_services_entry_takes_definitions_of_its_own() {
    let Some(nixpkgs) = nixpkgs("the_reference_services_entry_takes_definitions_of_its_own") else {
        return;
    };
    let v = eval_ok(
        nixpkgs,
        r#"{ services.handoff.enable = true;
             services.handoff.settings.log.level = "debug";
             services.handoff.apps.handoff = {
               listen = [ "9090" ];
               description = "the API";
               settings.server.drain_timeout = 10;
             }; }"#,
    );
    assert_eq!(failed(&v), Vec::<String>::new());
    assert_eq!(v["listen"]["handoff"], serde_json::json!(["9090"]));
    assert_eq!(
        section(unit(&v, "handoff.socket"), "Socket")["ListenStream"],
        ["9090"]
    );
    assert_eq!(
        section(unit(&v, "handoff.service"), "Unit")["Description"],
        ["the API"]
    );
    let settings = &v["settings"]["handoff"];
    assert_eq!(settings["server"]["drain_timeout"], 10);
    assert_eq!(settings["log"]["level"], "debug", "{settings}");
    assert_eq!(
        section(unit(&v, "handoff.service"), "Service")["TimeoutStopSec"],
        ["25"]
    );
}

/// A name that cannot be a unit's is refused by an assertion that says so,
/// not by nixpkgs' unit-name check deep in an evaluation.
#[test]
fn an_app_name_that_cannot_name_a_unit_is_refused_by_name() {
    let Some(nixpkgs) = nixpkgs("an_app_name_that_cannot_name_a_unit_is_refused_by_name") else {
        return;
    };
    let v = eval_ok(
        nixpkgs,
        r#"{ pkgs, ... }: { services.handoff.apps."my app" = { package = pkgs.hello; }; }"#,
    );
    let failed = failed(&v);
    assert!(
        failed.iter().any(
            |m| m.contains("services.handoff.apps.\"my app\"") && m.contains("letters, digits")
        ),
        "{failed:#?}"
    );
}

/// As nixpkgs' `listenStreams`, a port number is a listen entry.
#[test]
fn a_port_number_is_a_listen_entry() {
    let Some(nixpkgs) = nixpkgs("a_port_number_is_a_listen_entry") else {
        return;
    };
    let v = eval_ok(
        nixpkgs,
        r#"{ pkgs, ... }: { services.handoff.apps.a = { package = pkgs.hello; listen = [ 8080 "[::1]:9090" ]; openFirewall = true; }; }"#,
    );
    assert_eq!(failed(&v), Vec::<String>::new());
    assert_eq!(
        section(unit(&v, "a.socket"), "Socket")["ListenStream"],
        ["8080", "[::1]:9090"]
    );
    assert_eq!(v["firewall"], serde_json::json!([8080, 9090]));
    assert!(eval(nixpkgs, r#"{ pkgs, ... }: { services.handoff.apps.a = { package = pkgs.hello; listen = [ 70000 ]; }; }"#).is_err());
}

/// HTTPS: a second socket named `https` that starts the same service, the
/// files in the settings, the certificate's group as the service's, and a
/// renewal that reloads the service.
#[test]
fn https_gets_a_socket_named_https_the_files_in_the_settings_and_a_reload_at_renewal() {
    let Some(nixpkgs) = nixpkgs(
        "https_gets_a_socket_named_https_the_files_in_the_settings_and_a_reload_at_renewal",
    ) else {
        return;
    };
    let v = eval_ok(
        nixpkgs,
        r#"{ pkgs, ... }: {
          services.handoff.enable = true;
          services.handoff.openFirewall = true;
          services.handoff.tls = { listen = [ 443 ]; acmeHost = "example.org"; };
          security.acme.certs."example.org" = { group = "handoff-cert"; webroot = "/var/lib/acme/acme-challenge"; };
          services.handoff.apps.b = {
            package = pkgs.hello;
            listen = [ "8081" ];
            tls = { listen = [ "0.0.0.0:8443" ]; certificate = "/srv/tls/b.pem"; key = "/srv/tls/b.key"; group = "certs"; };
          };
          services.handoff.apps.plain = { package = pkgs.hello; listen = [ "8082" ]; };
        }"#,
    );
    assert_eq!(failed(&v), Vec::<String>::new());
    let socket = section(unit(&v, "handoff-https.socket"), "Socket");
    assert_eq!(socket["ListenStream"], ["443"]);
    assert_eq!(socket["FileDescriptorName"], ["https"]);
    assert_eq!(socket["Service"], ["handoff.service"]);
    assert!(unit(&v, "handoff-https.socket").contains("WantedBy=sockets.target"));
    // The plain socket keeps its name; the service takes both.
    assert_eq!(
        section(unit(&v, "handoff.socket"), "Socket")["FileDescriptorName"],
        ["http"]
    );
    let service = section(unit(&v, "handoff.service"), "Service");
    assert_eq!(
        service["Sockets"],
        ["handoff.socket", "handoff-https.socket"]
    );
    assert_eq!(service["Group"], ["handoff-cert"]);
    assert_eq!(service["DynamicUser"], ["true"]);
    assert_eq!(service["PrivateUsers"], ["true"]);
    let unit_section = section(unit(&v, "handoff.service"), "Unit");
    assert_eq!(
        unit_section["Requires"],
        ["handoff.socket handoff-https.socket"]
    );
    assert_eq!(
        v["settings"]["handoff"]["tls"]["certificate"],
        "/var/lib/acme/example.org/fullchain.pem"
    );
    assert_eq!(
        v["settings"]["handoff"]["tls"]["key"],
        "/var/lib/acme/example.org/key.pem"
    );
    assert_eq!(
        v["acme"]["example.org"]["reloadServices"],
        serde_json::json!(["handoff.service"])
    );
    assert_eq!(v["firewall"], serde_json::json!([8080, 443]));

    // Files of its own, read as the group named.
    assert_eq!(
        section(unit(&v, "b-https.socket"), "Socket")["ListenStream"],
        ["0.0.0.0:8443"]
    );
    assert_eq!(
        section(unit(&v, "b.service"), "Service")["Group"],
        ["certs"]
    );
    assert_eq!(
        v["settings"]["b"]["tls"],
        serde_json::json!({"certificate": "/srv/tls/b.pem", "key": "/srv/tls/b.key"})
    );

    // Without tls.listen: no socket, no group, no [tls].
    assert!(v["units"].get("plain-https.socket").is_none());
    let plain = section(unit(&v, "plain.service"), "Service");
    assert!(
        !plain.contains_key("Group") && !plain.contains_key("Sockets"),
        "{plain:?}"
    );
    assert!(v["settings"]["plain"].get("tls").is_none());
}

/// HTTP/3: a third socket, `NAME-quic.socket`, of `ListenDatagram=` lines
/// named `quic` (a socket unit names all its sockets alike, so it cannot be
/// the HTTPS one), that starts the same service and is among its
/// `Sockets=`; `openFirewall` opens its UDP ports. HTTP/3 alone (no
/// `tls.listen`) still gets the certificate in its settings and the
/// certificate's group.
#[test]
fn http3_gets_a_socket_of_its_own_named_quic_and_its_udp_ports_opened() {
    let name = "http3_gets_a_socket_of_its_own_named_quic_and_its_udp_ports_opened";
    let Some(nixpkgs) = nixpkgs(name) else {
        return;
    };
    let v = eval_ok(
        nixpkgs,
        r#"{ pkgs, ... }: {
          services.handoff.enable = true;
          services.handoff.openFirewall = true;
          services.handoff.tls = { listen = [ 443 ]; quicListen = [ 443 ]; acmeHost = "example.org"; };
          security.acme.certs."example.org" = { group = "handoff-cert"; webroot = "/var/lib/acme/acme-challenge"; };
          services.handoff.apps.b = {
            package = pkgs.hello;
            listen = [ "/run/b/http.sock" ];
            openFirewall = true;
            tls = { quicListen = [ "0.0.0.0:8443" "[::1]:8444" ]; certificate = "/srv/tls/b.pem"; key = "/srv/tls/b.key"; group = "certs"; };
          };
          services.handoff.apps.plain = { package = pkgs.hello; listen = [ "8082" ]; openFirewall = true; };
        }"#,
    );
    assert_eq!(failed(&v), Vec::<String>::new());
    let quic = unit(&v, "handoff-quic.socket");
    let socket = section(quic, "Socket");
    assert_eq!(socket["ListenDatagram"], ["443"]);
    assert_eq!(socket["FileDescriptorName"], ["quic"]);
    assert_eq!(socket["Service"], ["handoff.service"]);
    assert!(!socket.contains_key("ListenStream"), "{socket:?}");
    assert_eq!(section(quic, "Install")["WantedBy"], ["sockets.target"]);
    assert_eq!(
        section(quic, "Unit")["Documentation"],
        ["https://github.com/handoff-rs/handoff#http3"]
    );
    // The HTTPS socket stays a stream socket named https.
    let https = section(unit(&v, "handoff-https.socket"), "Socket");
    assert_eq!(https["FileDescriptorName"], ["https"]);
    assert!(!https.contains_key("ListenDatagram"), "{https:?}");
    // The service takes the three, and needs each.
    let service = section(unit(&v, "handoff.service"), "Service");
    assert_eq!(
        service["Sockets"],
        [
            "handoff.socket",
            "handoff-https.socket",
            "handoff-quic.socket"
        ]
    );
    assert_eq!(service["Group"], ["handoff-cert"]);
    let unit_section = section(unit(&v, "handoff.service"), "Unit");
    assert_eq!(
        unit_section["Requires"],
        ["handoff.socket handoff-https.socket handoff-quic.socket"]
    );
    assert!(
        unit_section["After"][0].contains("handoff-quic.socket"),
        "{unit_section:?}"
    );
    assert_eq!(v["firewall"], serde_json::json!([8080, 443, 8082]));
    // By app name here; NixOS sorts the ports itself.
    assert_eq!(v["firewallUdp"], serde_json::json!([8443, 8444, 443]));

    // HTTP/3 alone: its socket, the certificate and its group, no HTTPS
    // socket; a unix-only listen with UDP ports is something to open.
    let b = section(unit(&v, "b-quic.socket"), "Socket");
    assert_eq!(b["ListenDatagram"], ["0.0.0.0:8443", "[::1]:8444"]);
    assert!(v["units"].get("b-https.socket").is_none());
    let service = section(unit(&v, "b.service"), "Service");
    assert_eq!(service["Sockets"], ["b.socket", "b-quic.socket"]);
    assert_eq!(service["Group"], ["certs"]);
    assert_eq!(
        v["settings"]["b"]["tls"],
        serde_json::json!({"certificate": "/srv/tls/b.pem", "key": "/srv/tls/b.key"})
    );

    // Without tls.quicListen: no socket.
    assert!(v["units"].get("plain-quic.socket").is_none());
}

/// What `containers/build.sh --https` adds to the image
/// (containers/units/https/) is what the module renders for the reference
/// service with HTTPS and HTTP/3 on 8443: the two sockets, and the
/// drop-in's `Sockets=`.
#[test]
fn the_https_and_quic_sockets_render_the_units_of_containers_units_https() {
    let name = "the_https_and_quic_sockets_render_the_units_of_containers_units_https";
    let Some(nixpkgs) = nixpkgs(name) else {
        return;
    };
    let v = eval_ok(
        nixpkgs,
        r#"{ services.handoff.enable = true;
             services.handoff.tls = { listen = [ 8443 ]; quicListen = [ 8443 ]; certificate = "/c.pem"; key = "/k.pem"; }; }"#,
    );
    assert_eq!(failed(&v), Vec::<String>::new());
    let ours = |file: &str| {
        std::fs::read_to_string(root().join("containers/units/https").join(file))
            .unwrap_or_else(|e| panic!("containers/units/https/{file}: {e}"))
    };
    for socket in ["handoff-https.socket", "handoff-quic.socket"] {
        for name in ["Socket", "Install"] {
            let mut rendered = section(unit(&v, socket), name);
            for values in rendered.values_mut() {
                *values = values.iter().map(|v| normal(v)).collect();
            }
            let mut expected = section(&ours(socket), name);
            for values in expected.values_mut() {
                *values = values.iter().map(|v| normal(v)).collect();
            }
            assert_eq!(rendered, expected, "{socket} [{name}]");
        }
        assert_eq!(
            section(unit(&v, socket), "Unit")["Documentation"],
            section(&ours(socket), "Unit")["Documentation"],
            "{socket}"
        );
    }
    let sockets: Vec<String> = section(&ours("https.conf"), "Service")["Sockets"]
        .iter()
        .flat_map(|l| l.split_whitespace().map(str::to_owned))
        .collect();
    assert_eq!(
        section(unit(&v, "handoff.service"), "Service")["Sockets"],
        sockets
    );
}

/// An ACME certificate is there before the service: nixpkgs' consumers of a
/// certificate (nginx, caddy) want and order after `acme-HOST.service`,
/// which writes a self-signed one until the CA answers. A renewal reloads
/// each app once, and the user's `security.acme.defaults.reloadServices`
/// stay (a definition would replace them), unless the certificate does not
/// inherit defaults.
#[test]
fn an_acme_certificate_comes_before_the_service_and_keeps_the_users_reload_services() {
    let name = "an_acme_certificate_comes_before_the_service_and_keeps_the_users_reload_services";
    let Some(nixpkgs) = nixpkgs(name) else {
        return;
    };
    let config = |inherit: &str| {
        format!(
            r#"{{ pkgs, ... }}: {{
              services.handoff.enable = true;
              services.handoff.tls = {{ listen = [ 443 ]; acmeHost = "example.org"; }};
              services.handoff.apps.b = {{ package = pkgs.hello; listen = [ "8081" ]; tls = {{ listen = [ 8443 ]; acmeHost = "example.org"; }}; }};
              security.acme.defaults.reloadServices = [ "mail.service" ];
              security.acme.certs."example.org" = {{ webroot = "/var/lib/acme/acme-challenge"; {inherit} }};
            }}"#
        )
    };
    let v = eval_ok(nixpkgs, &config(""));
    assert_eq!(failed(&v), Vec::<String>::new());
    for service in ["handoff.service", "b.service"] {
        let unit_section = section(unit(&v, service), "Unit");
        assert_eq!(
            unit_section["Wants"],
            ["acme-example.org.service"],
            "{service}"
        );
        assert!(
            unit_section["After"][0].contains("acme-example.org.service"),
            "{service}: {unit_section:?}"
        );
    }
    let mut reload: Vec<String> =
        serde_json::from_value(v["acme"]["example.org"]["reloadServices"].clone()).unwrap();
    reload.sort();
    assert_eq!(reload, ["b.service", "handoff.service", "mail.service"]);

    let v = eval_ok(nixpkgs, &config("inheritDefaults = false;"));
    let mut reload: Vec<String> =
        serde_json::from_value(v["acme"]["example.org"]["reloadServices"].clone()).unwrap();
    reload.sort();
    assert_eq!(reload, ["b.service", "handoff.service"]);

    // Files of its own: no ACME unit to wait for.
    let v = eval_ok(
        nixpkgs,
        r#"{ services.handoff.enable = true;
             services.handoff.tls = { listen = [ 443 ]; certificate = "/srv/c.pem"; key = "/srv/k.pem"; }; }"#,
    );
    assert!(!unit(&v, "handoff.service").contains("acme"));
}

/// A `tls.acmeHost` whose certificate nobody declared is named by handoff,
/// not only by the ACME module's assertions about a certificate the user
/// never wrote.
#[test]
fn an_acme_host_that_is_not_declared_is_named() {
    let name = "an_acme_host_that_is_not_declared_is_named";
    let Some(nixpkgs) = nixpkgs(name) else {
        return;
    };
    let v = eval_ok(
        nixpkgs,
        r#"{ services.handoff.enable = true;
             services.handoff.tls = { listen = [ 443 ]; acmeHost = "example.org"; }; }"#,
    );
    let failed = failed(&v);
    assert!(
        failed.iter().any(|m| m.starts_with(
            "services.handoff.apps.handoff.tls.acmeHost is \"example.org\", but security.acme.certs.\"example.org\" is not declared"
        )),
        "{failed:#?}"
    );
}

/// The names of the flake's checks for x86_64-linux, evaluated through
/// nixpkgs' real lib (no derivation is built: the names need none), with
/// `HANDOFF_CHECKS` set as given.
fn flake_checks(nixpkgs: &Path, env: Option<&str>) -> Vec<String> {
    let expr = format!(
        r#"
        let
          flake = import {root}/flake.nix;
          nixpkgs = {{ lib = import {nixpkgs}/lib; legacyPackages = {{ x86_64-linux = {{ }}; aarch64-linux = {{ }}; }}; }};
          self = flake.outputs {{ inherit self nixpkgs; }};
        in builtins.attrNames self.checks.x86_64-linux
        "#,
        root = root().display(),
        nixpkgs = nixpkgs.display(),
    );
    let mut cmd = Command::new("nix-instantiate");
    cmd.args(["--eval", "--strict", "--json", "-E", &expr])
        .env("NIX_CONFIG", "build-users-group =")
        .env_remove("HANDOFF_CHECKS");
    if let Some(v) = env {
        cmd.env("HANDOFF_CHECKS", v);
    }
    let out = cmd.output().expect("nix-instantiate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `nix flake check` runs the quick checks and every VM test;
/// `HANDOFF_CHECKS=quick nix flake check --impure` the quick ones alone.
#[test]
fn a_quick_flake_check_leaves_the_vm_tests_out_and_the_default_runs_them_all() {
    let Some(nixpkgs) = nixpkgs("a_quick_flake_check_leaves_the_vm_tests_out") else {
        return;
    };
    let quick = [
        "cargo-test",
        "clippy",
        "fmt",
        "handoff",
        "module-eval",
        "nix-lint",
    ];
    let vm_files = std::fs::read_dir(root().join("nix/tests")).unwrap().count();
    let all = flake_checks(nixpkgs, None);
    assert_eq!(all.len(), quick.len() + vm_files, "{all:?}");
    assert!(
        quick.iter().all(|q| all.contains(&q.to_string())),
        "{all:?}"
    );
    assert!(all.contains(&"vm-fleet".to_string()), "{all:?}");
    assert_eq!(flake_checks(nixpkgs, Some("quick")), quick);
    // Without --impure, flakes evaluate purely, where getEnv reads "" (as
    // if unset): the variable alone cannot drop the VM tests.
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--option", "pure-eval", "true", "-E"])
        .arg(r#"builtins.getEnv "HANDOFF_CHECKS""#)
        .env("NIX_CONFIG", "build-users-group =")
        .env("HANDOFF_CHECKS", "quick")
        .output()
        .expect("nix-instantiate");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "\"\"");
}

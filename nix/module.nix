# services.handoff: handoff-based services, each a socket systemd holds and a
# hardened, socket-activated service behind it (the units of containers/units/,
# written as NixOS options).
#
# Any actix-web service built on the handoff crate is one entry of
# `services.handoff.apps`:
#
#   services.handoff.apps.hello = {
#     package = pkgs.callPackage ./hello.nix { };
#     listen = [ "8081" ];
#     settings.app.greeting = "bonjour";
#   };
#
# `services.handoff.enable` runs the reference service as the entry `handoff`.
{
  config,
  options,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.handoff;
  acmeCerts = config.security.acme.certs;
  settingsFormat = pkgs.formats.toml { };

  # What a listen entry binds: a unix socket path, or a TCP port on an
  # address. A bare port and "[::]" bind every address, IPv6 and IPv4 (the
  # socket's BindIPv6Only=default); "0.0.0.0" every IPv4 address.
  bindOf =
    entry:
    let
      s = toString entry;
      v6 = builtins.match "\\[([^]]*)]:([0-9]+)" s;
      v4 = builtins.match "([^:/]+):([0-9]+)" s;
      port = m: lib.toInt (builtins.elemAt m 1);
    in
    if builtins.match "[0-9]+" s != null then
      {
        port = lib.toInt s;
        addr = "*";
        family = "any";
      }
    else if v6 != null then
      {
        port = port v6;
        addr = if builtins.elemAt v6 0 == "::" then "*" else builtins.elemAt v6 0;
        family = "ipv6";
      }
    else if v4 != null then
      {
        port = port v4;
        addr = builtins.elemAt v4 0;
        family = "ipv4";
      }
    else
      { path = s; };
  portsOf = entries: map (b: b.port) (lib.filter (b: b ? port) (map bindOf entries));
  # Entries that bind no port: unix socket paths.
  pathsIn = lib.filter (entry: !(bindOf entry ? port));
  tcpPortsOf = app: portsOf (app.listen ++ app.tls.listen);
  # HTTP/3's: QUIC runs over UDP.
  udpPortsOf = app: portsOf app.tls.quicListen;

  # Where an app's certificate and key are, and the group that reads them.
  tlsOf =
    app:
    if app.tls.acmeHost != null then
      {
        certificate = "/var/lib/acme/${app.tls.acmeHost}/fullchain.pem";
        key = "/var/lib/acme/${app.tls.acmeHost}/key.pem";
        inherit (acmeCerts.${app.tls.acmeHost}) group;
      }
    else
      { inherit (app.tls) certificate key group; };
  httpsOf = app: app.tls.listen != [ ];
  quicOf = app: app.tls.quicListen != [ ];
  # HTTPS or HTTP/3 (or both): either needs the certificate.
  tlsServedOf = app: httpsOf app || quicOf app;
  acmeOf = app: if tlsServedOf app then app.tls.acmeHost else null;
  acmeHosts = lib.unique (lib.filter (h: h != null) (map acmeOf (lib.attrValues cfg.apps)));

  # Whether a configuration other than this module declares
  # security.acme.certs.<host>: this module's own definition (the reload at
  # renewal) declares it too, and the ACME module's assertions about an
  # undeclared certificate do not say where it came from.
  acmeDeclared =
    host:
    lib.any (def: def.file != toString ./module.nix && def.value ? ${host}) options.security.acme.certs.definitionsWithLocations;

  # Whether two listen entries cannot both bind: the same path, or the same
  # port of the same protocol (TCP or UDP, which do not share ports) on
  # addresses that overlap (a wildcard covers the specific ones).
  clash =
    a: b:
    if a ? path || b ? path then
      a ? path && b ? path && a.path == b.path
    else
      a.udp == b.udp
      && a.port == b.port
      && (
        a.addr == b.addr
        || a.addr == "*"
        || b.addr == "*"
        || (a.addr == "0.0.0.0" && b.family == "ipv4")
        || (b.addr == "0.0.0.0" && a.family == "ipv4")
      );

  # An app's name names its units.
  validName = name: builtins.match "[A-Za-z0-9_.-]+" name != null;
  optionOf = name: "services.handoff.apps.${lib.strings.escapeNixIdentifier name}";

  # What an application and services.handoff both have.
  commonOptions = {
    listen = lib.mkOption {
      type = lib.types.listOf (lib.types.either lib.types.str lib.types.port);
      default = [ "8080" ];
      example = [
        80
        "0.0.0.0:80"
        "[::]:80"
        "/run/hello/http.sock"
      ];
      description = ''
        `ListenStream=` values of the service's socket unit: a port (IPv6 and
        IPv4; a number or a string), an `address:port`, or a unix socket path. systemd binds them
        and keeps them open across restarts and reloads.

        switch-to-configuration does not restart changed socket units: after
        changing this, run `systemctl restart NAME.socket NAME.service`.
      '';
    };

    settings = lib.mkOption {
      type = lib.types.submodule {
        freeformType = settingsFormat.type;
        options.server = lib.mkOption {
          type = lib.types.submodule {
            freeformType = settingsFormat.type;
            options.drain_timeout = lib.mkOption {
              type = lib.types.ints.positive;
              default = 30;
              description = ''
                Seconds that requests in flight may take to finish when the
                service stops or hands off. `TimeoutStopSec=` is set 15 s
                above it and `shutdown_delay` together.
              '';
            };
            options.shutdown_delay = lib.mkOption {
              type = lib.types.ints.unsigned;
              default = 0;
              example = 5;
              description = ''
                Lame duck: seconds the service keeps serving after SIGTERM,
                with `/readyz` answering 503, before it drains, so that a load
                balancer's health check takes the host out first. Set it above
                the balancer's time to mark a host down (see handoff's README,
                "Behind a load balancer"). Not applied to a reload.
              '';
            };
          };
          default = { };
          description = "The `[server]` section.";
        };
      };
      default = { };
      example = lib.literalExpression ''
        {
          server.workers = 4;
          server.keep_alive = "10s";
          log.level = "info,actix_server=warn";
          # The service's own settings.
          app.max_delay = "2s";
        }
      '';
      description = ''
        The service's configuration (see handoff's README; `app` is the
        service's own section), rendered to the TOML file it reads with
        `--config`. `server.listen` does not apply: the sockets come from
        `listen`.
      '';
    };

    tls = {
      listen = lib.mkOption {
        type = lib.types.listOf (lib.types.either lib.types.str lib.types.port);
        default = [ ];
        example = [ 443 ];
        description = ''
          `ListenStream=` values of the service's HTTPS socket, `NAME-https.socket`
          (`FileDescriptorName=https`), written as `listen`'s. Empty (the
          default): no HTTPS. Needs `tls.acmeHost`, or `tls.certificate` and
          `tls.key`.
        '';
      };
      quicListen = lib.mkOption {
        type = lib.types.listOf (lib.types.either lib.types.str lib.types.port);
        default = [ ];
        example = [ 443 ];
        description = ''
          `ListenDatagram=` values of the service's HTTP/3 (QUIC, over UDP)
          socket, `NAME-quic.socket` (`FileDescriptorName=quic`): a port or
          an `address:port`, written as `listen`'s; no unix socket path.
          Usually the ports of `tls.listen`: a UDP port does not clash with
          the TCP port of the same number, and HTTPS answers name it in
          `Alt-Svc`, which is how clients find HTTP/3. Empty (the default):
          no HTTP/3. Needs `tls.acmeHost`, or `tls.certificate` and
          `tls.key`.

          A socket unit's `FileDescriptorName=` names all its sockets, so
          these are a unit of their own rather than lines of
          `NAME-https.socket`. switch-to-configuration does not restart
          changed socket units: after changing this, run
          `systemctl restart NAME-quic.socket NAME.service`.
        '';
      };
      acmeHost = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "example.org";
        description = ''
          Serve the certificate of `security.acme.certs.<acmeHost>`: its
          `fullchain.pem` and `key.pem`, read by the service as the
          certificate's group (`Group=`; give the certificate a group of its
          own, `security.acme.certs.<acmeHost>.group`, for the service to read
          that certificate and no other). A renewal reloads the service
          (`reloadServices`): its successor reads the renewed files, and one
          that cannot use them leaves the old process serving.
        '';
      };
      certificate = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "/var/lib/certs/example.org/fullchain.pem";
        description = ''
          PEM file of the certificate and its chain, outside the Nix store,
          readable by `tls.group`. Read at every start and reload: replace the
          file and reload the service to renew it.
        '';
      };
      key = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "/var/lib/certs/example.org/key.pem";
        description = "PEM file of the certificate's private key, outside the Nix store.";
      };
      group = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "certs";
        description = ''
          The group the service runs as (`Group=`; the user stays dynamic),
          so that it reads `tls.certificate` and `tls.key` (mode 0640 or
          0440, that group) and nothing else of that kind. Set from
          `tls.acmeHost`.
        '';
      };
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the TCP ports of `listen` and `tls.listen`, and the UDP ports of `tls.quicListen`, in the firewall.";
    };

    environmentFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      example = "/run/secrets/hello.env";
      description = ''
        A file of `HANDOFF__SECTION__KEY=value` lines, read by systemd when it
        starts the service and by each reload, for settings that must not be
        in the Nix store.
      '';
    };
  };

  appModule =
    { name, config, ... }:
    {
      options = commonOptions // {
        package = lib.mkOption {
          type = lib.types.package;
          description = "The service's package: a binary built on the actix-handoff crate.";
        };
        executable = lib.mkOption {
          type = lib.types.str;
          default = lib.getExe config.package;
          defaultText = lib.literalExpression "lib.getExe package";
          description = "The binary to run (from `meta.mainProgram` by default).";
        };
        description = lib.mkOption {
          type = lib.types.str;
          default = "${name}, a handoff service";
          description = "The units' `Description=`.";
        };
      };
      # The files are named in the configuration, read by the service at
      # each start and reload, never copied into the store.
      config.settings.tls = lib.mkIf (tlsServedOf config) (
        lib.filterAttrs (_: v: v != null) { inherit (tlsOf config) certificate key; }
      );
    };

  # The socket and service units of application `name`.
  unitsOf =
    name: app:
    let
      tls = tlsOf app;
      https = httpsOf app;
      quic = quicOf app;
      configFile = settingsFormat.generate "${name}.toml" app.settings;
      command = "${app.executable} --config ${configFile}";
      sockets = [
        "${name}.socket"
      ]
      ++ lib.optional https "${name}-https.socket"
      ++ lib.optional quic "${name}-quic.socket";
    in
    {
      sockets."${name}-https" = lib.mkIf https {
        description = "${app.description}: HTTPS socket";
        documentation = [ "https://github.com/handoff-rs/handoff#https" ];
        wantedBy = [ "sockets.target" ];
        listenStreams = map toString app.tls.listen;
        socketConfig = {
          # handoff serves TLS on fds named "https".
          FileDescriptorName = "https";
          # A connection here starts the one service of both sockets.
          Service = "${name}.service";
          Backlog = 4096;
          NoDelay = true;
        };
      };

      # Not lines of NAME-https.socket: a socket unit's FileDescriptorName=
      # names every socket of the unit.
      sockets."${name}-quic" = lib.mkIf quic {
        description = "${app.description}: HTTP/3 socket";
        documentation = [ "https://github.com/handoff-rs/handoff#http3" ];
        wantedBy = [ "sockets.target" ];
        listenDatagrams = map toString app.tls.quicListen;
        # No Backlog= or NoDelay=: a datagram socket has no accept queue,
        # and no Nagle.
        socketConfig = {
          # handoff serves HTTP/3 on a UDP socket named "quic".
          FileDescriptorName = "quic";
          # A datagram here starts the one service of every socket.
          Service = "${name}.service";
        };
      };

      sockets.${name} = {
        description = "${app.description}: listening socket";
        documentation = [ "https://github.com/handoff-rs/handoff#operations" ];
        wantedBy = [ "sockets.target" ];
        listenStreams = map toString app.listen;
        socketConfig = {
          # handoff serves fds named "http"; other names are refused.
          FileDescriptorName = "http";
          # Connections queued while the service restarts.
          Backlog = 4096;
          NoDelay = true;
        };
      };

      services.${name} = {
        inherit (app) description;
        documentation = [ "https://github.com/handoff-rs/handoff#operations" ];
        requires = sockets;
        # No start limit: a service that keeps failing would hit it within a
        # second and systemd would fail the socket with it (clients reset
        # and refused); RestartSec= and its steps pace the retries.
        startLimitIntervalSec = 0;
        # An ACME certificate's files exist once acme-HOST.service has run
        # (it writes a self-signed one until the CA answers), as nixpkgs'
        # own consumers of a certificate order themselves.
        wants = lib.optional (acmeOf app != null) "acme-${acmeOf app}.service";
        after = sockets ++ lib.optional (acmeOf app != null) "acme-${acmeOf app}.service";

        # A switch with a new package or settings reloads: ExecReload runs the
        # new binary with the new configuration, which takes over the sockets
        # and serves before the old process stops. stopIfChanged = false keeps
        # the socket open when a switch restarts the service instead.
        reloadIfChanged = true;
        stopIfChanged = false;

        serviceConfig = {
          Type = "notify";
          # Every socket's fds, named http, https and quic.
          Sockets = lib.mkIf (https || quic) sockets;
          # The certificate's group, so that the dynamic user reads its files.
          Group = lib.mkIf ((https || quic) && tls.group != null) tls.group;
          # The old main process names its successor with MAINPID= itself.
          NotifyAccess = "main";
          ExecStart = command;
          ExecReload = "${command} reload --pid $MAINPID";
          # After a reload the main process is not systemd's child; this
          # signals it and waits until it has drained (see src/lifecycle/stop.rs).
          ExecStop = "${app.executable} stop --pid=\${MAINPID}";
          TimeoutStopSec = app.settings.server.drain_timeout + app.settings.server.shutdown_delay + 15;
          WatchdogSec = 30;
          # Every failure is retried, a bad configuration (exit 78) too:
          # while the service waits to be restarted, systemd holds the
          # socket's connections for it instead of starting it again for
          # each (see containers/units/handoff.service). Backing off from
          # 100 ms to a minute (systemd 254+, which NixOS has).
          Restart = "on-failure";
          RestartSec = "100ms";
          RestartSteps = 5;
          RestartMaxDelaySec = "1min";
          # Idle keep-alive connections survive a restart in the fd store
          # (see containers/units/handoff.service). NixOS's systemd (254+)
          # sets FDSTORE= from FileDescriptorStoreMax= itself.
          FileDescriptorStoreMax = 4096;
          FileDescriptorStorePreserve = "restart";
          # Keep-alive clients hold a descriptor each; the seccomp filter below
          # denies the service raising its own limit.
          LimitNOFILE = 65536;
          # Holds the reload control socket that ExecReload talks to.
          RuntimeDirectory = name;
          RuntimeDirectoryMode = "0700";
          EnvironmentFile = lib.mkIf (app.environmentFile != null) app.environmentFile;

          # accept(2) on the sockets systemd passes is unaffected by the network
          # restrictions; handoff opens only AF_UNIX sockets of its own.
          DynamicUser = true;
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateTmp = true;
          PrivateDevices = true;
          PrivateNetwork = true;
          PrivateUsers = true;
          ProtectHostname = true;
          ProtectClock = true;
          ProtectKernelTunables = true;
          ProtectKernelModules = true;
          ProtectKernelLogs = true;
          ProtectControlGroups = true;
          ProtectProc = "invisible";
          ProcSubset = "pid";
          NoNewPrivileges = true;
          CapabilityBoundingSet = "";
          AmbientCapabilities = "";
          RestrictAddressFamilies = [ "AF_UNIX" ];
          IPAddressDeny = "any";
          RestrictNamespaces = true;
          RestrictRealtime = true;
          RestrictSUIDSGID = true;
          LockPersonality = true;
          MemoryDenyWriteExecute = true;
          RemoveIPC = true;
          DevicePolicy = "closed";
          SystemCallArchitectures = "native";
          SystemCallFilter = [
            "@system-service"
            "~@privileged @resources"
          ];
          SystemCallErrorNumber = "EPERM";
          UMask = "0077";
        };
      };
    };

  assertionsOf = name: app: [
    {
      assertion = validName name;
      message = "${optionOf name}: the name names its units (NAME.socket, NAME.service): use letters, digits, \"-\", \"_\" and \".\" only.";
    }
    {
      assertion = app.listen != [ ];
      message = "${optionOf name}.listen must name at least one socket (a port, address:port, or unix socket path).";
    }
    {
      assertion = app.openFirewall -> tcpPortsOf app ++ udpPortsOf app != [ ];
      message = "${optionOf name}.openFirewall is set, but its listen has no TCP port to open (only unix sockets), and tls.quicListen no UDP port.";
    }
    {
      assertion = !(app.settings.server ? listen);
      message = "${optionOf name}.settings.server.listen has no effect: the service takes its sockets from ${name}.socket. Set listen instead.";
    }
    {
      assertion = httpsOf app -> (app.tls.acmeHost != null || (app.tls.certificate != null && app.tls.key != null));
      message = "${optionOf name}.tls.listen is set: HTTPS needs tls.acmeHost, or tls.certificate and tls.key.";
    }
    {
      assertion = quicOf app -> (app.tls.acmeHost != null || (app.tls.certificate != null && app.tls.key != null));
      message = "${optionOf name}.tls.quicListen is set: HTTP/3 needs tls.acmeHost, or tls.certificate and tls.key.";
    }
    {
      # QUIC is UDP: a unix socket path would be a datagram socket that
      # handoff refuses at startup.
      assertion = pathsIn app.tls.quicListen == [ ];
      message = "${optionOf name}.tls.quicListen: ${lib.concatMapStringsSep ", " (l: builtins.toJSON (toString l)) (pathsIn app.tls.quicListen)} is not a port or address:port (HTTP/3 runs over UDP).";
    }
    {
      assertion = !(app.tls.acmeHost != null && (app.tls.certificate != null || app.tls.key != null));
      message = "${optionOf name}.tls: set tls.acmeHost or tls.certificate and tls.key, not both.";
    }
    {
      assertion = acmeOf app != null -> acmeDeclared (acmeOf app);
      message = "${optionOf name}.tls.acmeHost is \"${toString (acmeOf app)}\", but security.acme.certs.\"${toString (acmeOf app)}\" is not declared: declare the certificate (its domain, email and challenge; see the NixOS manual's ACME chapter), or serve files with tls.certificate and tls.key.";
    }
    {
      assertion = !(app.tls.key != null && lib.hasPrefix builtins.storeDir app.tls.key);
      message = "${optionOf name}.tls.key is in the Nix store, readable by every user; point it at a file outside the store.";
    }
    {
      assertion = !(app.environmentFile != null && lib.hasPrefix builtins.storeDir (toString app.environmentFile));
      message = "${optionOf name}.environmentFile is in the Nix store, readable by every user; point it at a file outside the store.";
    }
  ];

  # Two listen entries, of one app or of two, that would fight over one
  # socket, however each is spelled: over TCP (or a path) one fails at
  # boot; over UDP both bind (systemd sets SO_REUSEADDR) and the last one
  # takes every datagram.
  clashes =
    let
      entriesOf =
        name: udp: suffix:
        map (l: {
          inherit name;
          text = "${toString l}${suffix}";
          binds = bindOf l // { inherit udp; };
        });
      entries = lib.concatLists (
        lib.mapAttrsToList (
          name: app:
          entriesOf name false "" (app.listen ++ app.tls.listen)
          ++ entriesOf name true "/udp" app.tls.quicListen
        ) cfg.apps
      );
      n = lib.length entries;
      at = lib.elemAt entries;
    in
    lib.concatLists (
      lib.genList (
        i:
        lib.concatLists (
          lib.genList (
            j:
            lib.optional (j > i && clash (at i).binds (at j).binds)
              "${(at i).text} (${(at i).name}) and ${(at j).text} (${(at j).name})"
          ) n
        )
      ) n
    );
in
{
  options.services.handoff = commonOptions // {
    enable = lib.mkEnableOption "handoff's reference service (the entry `handoff` of services.handoff.apps)";

    package = lib.mkPackageOption pkgs "handoff" { };

    apps = lib.mkOption {
      type = lib.types.attrsOf (lib.types.submodule appModule);
      default = { };
      example = lib.literalExpression ''
        {
          hello = {
            package = pkgs.callPackage ./hello.nix { };
            listen = [ "8081" ];
            settings.app.greeting = "bonjour";
          };
        }
      '';
      description = ''
        handoff-based services, by name: each gets `NAME.socket` and a
        hardened `NAME.service`, reloads on `nixos-rebuild switch`, and
        `/etc`-free settings rendered from `settings`.
      '';
    };
  };

  config = lib.mkMerge [
    (lib.mkIf cfg.enable {
      # Defaults of the entry, leaf by leaf: a definition under
      # services.handoff.apps.handoff replaces one of them instead of being
      # appended to it or conflicting with it.
      services.handoff.apps.handoff =
        lib.mapAttrs (_: lib.mkDefault) {
          inherit (cfg)
            package
            listen
            openFirewall
            environmentFile
            ;
          description = "handoff HTTP service";
        }
        // {
          tls = lib.mapAttrs (_: lib.mkDefault) cfg.tls;
          settings = lib.mapAttrsRecursive (_: lib.mkDefault) cfg.settings;
        };
    })
    (lib.mkIf (cfg.apps != { }) {
      assertions =
        lib.concatLists (lib.mapAttrsToList assertionsOf cfg.apps)
        ++ [
          {
            assertion = clashes == [ ];
            message = "services.handoff.apps: these listen entries bind the same socket, and one would fail at boot (over UDP, take the other's datagrams): ${lib.concatStringsSep "; " clashes}";
          }
        ];

      # A renewal reloads each app that serves the certificate. Defining
      # reloadServices replaces its default (security.acme.defaults'), so
      # the defaults are added back where the certificate inherits them.
      security.acme.certs = lib.mkMerge (
        lib.mapAttrsToList (
          name: app: lib.optionalAttrs (acmeOf app != null) { ${acmeOf app}.reloadServices = [ "${name}.service" ]; }
        ) cfg.apps
        ++ map (host: {
          ${host}.reloadServices = lib.optionals acmeCerts.${host}.inheritDefaults config.security.acme.defaults.reloadServices;
        }) acmeHosts
      );

      networking.firewall.allowedTCPPorts = lib.concatLists (
        lib.mapAttrsToList (_: app: lib.optionals app.openFirewall (tcpPortsOf app)) cfg.apps
      );
      networking.firewall.allowedUDPPorts = lib.concatLists (
        lib.mapAttrsToList (_: app: lib.optionals app.openFirewall (udpPortsOf app)) cfg.apps
      );

      # Units only for names that can name one: the assertion says what is
      # wrong with the others.
      systemd = lib.mkMerge (lib.mapAttrsToList unitsOf (lib.filterAttrs (name: _: validName name) cfg.apps));
    })
  ];
}

# services.handoff: the socket systemd holds, and the hardened, socket-
# activated service behind it. The same units as containers/units/, written
# as NixOS options.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.handoff;
  settingsFormat = pkgs.formats.toml { };
  configFile = settingsFormat.generate "handoff.toml" cfg.settings;
  drainTimeout = cfg.settings.server.drain_timeout;

  # "8080", "0.0.0.0:8080" and "[::]:8080" open a TCP port; paths do not.
  portOf =
    entry:
    let
      m = builtins.match "(.*:)?([0-9]+)" entry;
    in
    if m == null then null else lib.toInt (builtins.elemAt m 1);
  tcpPorts = lib.filter (p: p != null) (map portOf cfg.listen);

  handoff = "${lib.getExe cfg.package} --config ${configFile}";
in
{
  options.services.handoff = {
    enable = lib.mkEnableOption "handoff, an HTTP service that restarts and redeploys with zero downtime";

    package = lib.mkPackageOption pkgs "handoff" { };

    listen = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ "8080" ];
      example = [
        "0.0.0.0:80"
        "[::]:80"
        "/run/handoff/http.sock"
      ];
      description = ''
        `ListenStream=` values of `handoff.socket`: a port (IPv6 and IPv4), an
        `address:port`, or a unix socket path. systemd binds them and keeps them
        open across restarts and reloads.

        switch-to-configuration does not restart changed socket units: after
        changing this, run `systemctl restart handoff.socket handoff.service`.
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
                service stops or hands off. `TimeoutStopSec=` is set 15 s above.
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
          limits.max_delay = "2s";
          log.level = "info,actix_server=warn";
        }
      '';
      description = ''
        handoff's configuration (see its README), rendered to the TOML file
        it reads with `--config`. `server.listen` does not apply: the
        sockets come from {option}`services.handoff.listen`.
      '';
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the TCP ports of {option}`services.handoff.listen` in the firewall.";
    };

    environmentFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      example = "/run/secrets/handoff.env";
      description = ''
        A file of `HANDOFF__SECTION__KEY=value` lines, read by systemd when it
        starts the service and by each reload, for settings that must not be
        in the Nix store.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.listen != [ ];
        message = "services.handoff.listen must name at least one socket (a port, address:port, or unix socket path).";
      }
      {
        assertion = cfg.openFirewall -> tcpPorts != [ ];
        message = "services.handoff.openFirewall is set, but services.handoff.listen has no TCP port to open (only unix sockets).";
      }
      {
        assertion = !(cfg.settings.server ? listen);
        message = "services.handoff.settings.server.listen has no effect: handoff takes its sockets from handoff.socket. Set services.handoff.listen instead.";
      }
      {
        assertion = !(cfg.environmentFile != null && lib.hasPrefix builtins.storeDir (toString cfg.environmentFile));
        message = "services.handoff.environmentFile is in the Nix store, readable by every user; point it at a file outside the store.";
      }
    ];

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall tcpPorts;

    systemd = {
      sockets.handoff = {
        description = "handoff listening socket";
        documentation = [ "https://github.com/handoff-rs/handoff#operations" ];
        wantedBy = [ "sockets.target" ];
        listenStreams = cfg.listen;
        socketConfig = {
          # handoff serves fds named "http"; other names are refused.
          FileDescriptorName = "http";
          # Connections queued while the service restarts.
          Backlog = 4096;
          NoDelay = true;
        };
      };

      services.handoff = {
        description = "handoff HTTP service";
        documentation = [ "https://github.com/handoff-rs/handoff#operations" ];
        requires = [ "handoff.socket" ];
        after = [ "handoff.socket" ];

        # A switch with a new package or settings reloads: ExecReload runs the
        # new binary with the new configuration, which takes over the sockets
        # and serves before the old process stops. stopIfChanged = false keeps
        # the socket open when a switch restarts the service instead.
        reloadIfChanged = true;
        stopIfChanged = false;

        serviceConfig = {
          Type = "notify";
          # The old main process names its successor with MAINPID= itself.
          NotifyAccess = "main";
          ExecStart = handoff;
          ExecReload = "${handoff} reload --pid $MAINPID";
          TimeoutStopSec = drainTimeout + 15;
          WatchdogSec = 30;
          Restart = "on-failure";
          # Idle keep-alive connections survive a restart in the fd store
          # (see containers/units/handoff.service). NixOS's systemd (254+)
          # sets FDSTORE= from FileDescriptorStoreMax= itself.
          FileDescriptorStoreMax = 4096;
          FileDescriptorStorePreserve = "restart";
          # Keep-alive clients hold a descriptor each; the seccomp filter below
          # denies handoff raising its own limit.
          LimitNOFILE = 65536;
          # A bad command line, socket set or configuration will not fix itself.
          RestartPreventExitStatus = "64 65 78";
          # Holds the reload control socket that ExecReload talks to.
          RuntimeDirectory = "handoff";
          RuntimeDirectoryMode = "0700";
          EnvironmentFile = lib.mkIf (cfg.environmentFile != null) cfg.environmentFile;

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
  };
}

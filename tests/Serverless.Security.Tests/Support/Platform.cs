// The tests check Unix file modes (0600) and run on Linux and macOS; Windows uses ACLs instead.
[assembly: System.Runtime.Versioning.UnsupportedOSPlatform("windows")]

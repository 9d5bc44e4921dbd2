using Serverless.Security.Authorization;
using Serverless.Security.Keys;

namespace Serverless.Client.Admin;

/// <summary>
/// <c>admin issuer | token | ca | audit | compliance</c>: the operator's and auditor's tools. Keys and
/// certificates are made in the operator's own directories (never the host's data directory); the
/// audit trail and the compliance report are read over the API, with a token the operator's issuer signed.
/// </summary>
internal static class AdminCommands
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const string TokenVariable = "SERVERLESS_TOKEN";
    private const string TrustedKeysSetting = "SERVERLESS_TRUSTED_TOKEN_KEYS";

    public static Command Create()
    {
        var admin = new Command("admin", "Operator and auditor tools: token issuer, bearer tokens, dev CA, audit trail, compliance");
        admin.Subcommands.Add(Issuer());
        admin.Subcommands.Add(Token());
        admin.Subcommands.Add(Ca());
        admin.Subcommands.Add(Audit());
        admin.Subcommands.Add(Compliance());
        return admin;
    }

    private static Command Issuer()
    {
        var output = OutOption();
        var create = new Command("create",
            $"Create an ES256 token issuer: issuer.key (0600) and issuer.jwks.json, the public key set the app trusts through {TrustedKeysSetting}")
            { output };
        create.SetAction(r => Guard(() =>
        {
            var dir = r.GetValue(output)!.FullName;
            using var issuer = OfflineTokenIssuer.Create();
            issuer.Save(dir);
            var jwks = Path.Combine(dir, OfflineTokenIssuer.JwksFileName);
            Console.WriteLine($"wrote {Path.Combine(dir, OfflineTokenIssuer.KeyFileName)} and {jwks} (kid {issuer.KeyId})");
            Console.WriteLine($"start the app with {TrustedKeysSetting}={jwks}");
            return Cli.Ok;
        }));
        var issuerCommand = new Command("issuer", "The operator's token issuer (it stands where an identity provider stands in production)");
        issuerCommand.Subcommands.Add(create);
        return issuerCommand;
    }

    private static Command Token()
    {
        var issuerDir = new Option<DirectoryInfo>("--issuer")
        {
            Description = "Directory of the token issuer made by 'admin issuer create' (issuer.key)",
            Required = true,
        };
        var subject = new Option<string>("--subject") { Description = "Subject (sub claim): the user or service the token names", Required = true };
        var roles = new Option<string[]>("--role")
        {
            Description = "Role (repeatable): " + string.Join(", ", RolePermissionTable.Default.Roles.Keys.Order(StringComparer.Ordinal)),
            Required = true, Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false,
        };
        var tenant = new Option<string?>("--tenant") { Description = "Tenant (hospital, partner) the token is scoped to; required by tenant-scoped roles" };
        var lifetime = new Option<TimeSpan?>("--lifetime") { Description = "Lifetime as hh:mm:ss (default 01:00:00, at most 1 day)" };
        var issue = new Command("issue", "Print a bearer token (ES256 JWT) signed by the operator's issuer") { issuerDir, subject, roles, tenant, lifetime };
        issue.SetAction(r => Guard(() =>
        {
            var roleList = r.GetValue(roles)!.Distinct(StringComparer.Ordinal).ToList();
            var tenantValue = r.GetValue(tenant);
            var table = RolePermissionTable.Default;
            foreach (var role in roleList)
            {
                // Unknown roles grant nothing on the host (deny by default); refuse them here instead of minting a useless token.
                if (!table.Roles.TryGetValue(role, out var definition))
                    throw new ArgumentException($"unknown role '{role}' (known: {string.Join(", ", table.Roles.Keys.Order(StringComparer.Ordinal))})");
                if (definition.TenantScoped && string.IsNullOrWhiteSpace(tenantValue))
                    throw new ArgumentException($"role '{role}' is tenant-scoped; pass --tenant");
            }
            using var issuer = OfflineTokenIssuer.Load(r.GetValue(issuerDir)!.FullName);
            Console.WriteLine(issuer.Issue(new TokenRequest(r.GetValue(subject)!, roleList, tenantValue, r.GetValue(lifetime))));
            return Cli.Ok;
        }));
        var token = new Command("token", "Bearer tokens");
        token.Subcommands.Add(issue);
        return token;
    }

    private static Command Ca()
    {
        var ca = new Command("ca", "A local development certificate authority for mutual TLS");
        ca.Subcommands.Add(CaCreate());
        ca.Subcommands.Add(CaServer());
        ca.Subcommands.Add(CaClient());
        return ca;
    }

    private static Option<DirectoryInfo> OutOption() => new("--out") { Description = "Output directory", Required = true };

    private static Option<DirectoryInfo> CaDirOption() => new("--ca") { Description = "Directory of the CA made by 'admin ca create' (ca.pfx)", Required = true };

    private static Command CaCreate()
    {
        var output = OutOption();
        var name = new Option<string>("--name") { Description = "The CA's common name", DefaultValueFactory = _ => "Serverless Dev CA" };
        var cmd = new Command("create", "Create a root: ca.pfx (certificate and key, 0600), ca.pem (certificate), ca.key (PKCS#8 key, 0600)") { output, name };
        cmd.SetAction(r => Guard(() =>
        {
            var dir = r.GetValue(output)!;
            var pfx = Path.Combine(dir.FullName, "ca.pfx");
            if (File.Exists(pfx)) throw new InvalidOperationException($"a CA already exists at {pfx}; refusing to overwrite it");
            dir.Create();
            using var authority = DevCertificateAuthority.Create(r.GetValue(name)!);
            Write(dir.FullName, "ca", authority.Certificate);
            Console.WriteLine($"wrote {pfx}, {Path.ChangeExtension(pfx, ".pem")}, {Path.ChangeExtension(pfx, ".key")}");
            Console.WriteLine($"subject {authority.Certificate.Subject}; valid until {authority.Certificate.NotAfter.ToUniversalTime():yyyy-MM-dd}");
            return Cli.Ok;
        }));
        return cmd;
    }

    private static Command CaServer()
    {
        var caDir = CaDirOption();
        var output = OutOption();
        var dns = new Option<string[]>("--dns") { Description = "DNS name (repeatable)", DefaultValueFactory = _ => ["localhost"], AllowMultipleArgumentsPerToken = false };
        var ip = new Option<string[]>("--ip") { Description = "IP address (repeatable)", DefaultValueFactory = _ => ["127.0.0.1"], AllowMultipleArgumentsPerToken = false };
        var cmd = new Command("server", "Issue a TLS server certificate: server.pfx (0600), server.pem, server.key (0600)") { caDir, output, dns, ip };
        cmd.SetAction(r => Guard(() =>
        {
            var names = r.GetValue(dns)!;
            foreach (var name in names)
                if (Uri.CheckHostName(name) != UriHostNameType.Dns) throw new ArgumentException($"'{name}' is not a DNS name");
            var addresses = r.GetValue(ip)!.Select(a => IPAddress.TryParse(a, out var parsed) ? parsed : throw new ArgumentException($"'{a}' is not an IP address")).ToList();
            if (names.Length + addresses.Count == 0) throw new ArgumentException("a server certificate needs at least one --dns or --ip");
            using var authority = LoadCa(r.GetValue(caDir)!);
            using var certificate = authority.IssueServerCertificate(names, addresses);
            var dir = r.GetValue(output)!;
            dir.Create();
            Write(dir.FullName, "server", certificate);
            Console.WriteLine($"wrote {Path.Combine(dir.FullName, "server.pfx")}: {certificate.Subject}, names {string.Join(", ", names.Concat(addresses.Select(a => a.ToString())))}");
            return Cli.Ok;
        }));
        return cmd;
    }

    private static Command CaClient()
    {
        var caDir = CaDirOption();
        var output = OutOption();
        var clientId = new Option<string>("--client-id") { Description = "Federation client id (the certificate's CN and file name)", Required = true };
        var cmd = new Command("client", "Issue a TLS client certificate: <id>.pfx (0600), <id>.pem, <id>.key (0600); prints the SHA-256 thumbprint to register") { caDir, output, clientId };
        cmd.SetAction(r => Guard(() =>
        {
            var id = r.GetValue(clientId)!;
            if (id.Length == 0 || id.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || id.Contains("..", StringComparison.Ordinal) || id.Any(char.IsWhiteSpace))
                throw new ArgumentException($"invalid client id '{id}' (no path separators, '..' or spaces)");
            using var authority = LoadCa(r.GetValue(caDir)!);
            using var certificate = authority.IssueClientCertificate(id);
            var dir = r.GetValue(output)!;
            dir.Create();
            Write(dir.FullName, id, certificate);
            Console.WriteLine($"wrote {Path.Combine(dir.FullName, id + ".pfx")}: {certificate.Subject}");
            Console.WriteLine($"thumbprint (SHA-256) {ClientCertificateRegistry.Thumbprint(certificate)}");
            return Cli.Ok;
        }));
        return cmd;
    }

    /// <summary>The host and the credentials of a call over the API (a fresh instance per command).</summary>
    private sealed record ApiOptions(Option<string> Server, Option<string?> Token, Option<FileInfo?> Ca)
    {
        public static ApiOptions Create() => new(
            new("--server") { Description = "The function host, e.g. https://127.0.0.1:7071", Required = true },
            new("--token") { Description = $"Bearer token with role auditor (default: env {TokenVariable}); 'admin token issue' makes one" },
            new("--ca") { Description = "PEM of the CA that issued the host's TLS certificate (default: the system's roots)" });

        public void AddTo(Command command)
        {
            command.Options.Add(Server);
            command.Options.Add(Token);
            command.Options.Add(Ca);
        }

        public AdminApi Open(ParseResult r) => AdminApi.Create(
            Uri.TryCreate(r.GetValue(Server), UriKind.Absolute, out var server) ? server : throw new ArgumentException("--server must be an absolute URL"),
            r.GetValue(Token) ?? Environment.GetEnvironmentVariable(TokenVariable) ?? throw new ArgumentException($"pass --token or set {TokenVariable}"),
            r.GetValue(Ca)?.FullName);
    }

    private static Command Audit()
    {
        var verifyApi = ApiOptions.Create();
        var verify = new Command("verify", "Verify the host's audit trail (hash chain, signed checkpoints, external anchors) over the API; exit 0 if intact, 1 if broken");
        verifyApi.AddTo(verify);
        verify.SetAction((r, ct) => Cli.GuardAsync(async () =>
        {
            using var client = verifyApi.Open(r);
            var report = await client.VerifyAuditAsync(ct);
            Console.WriteLine(report.Summary);
            if (report.FirstBreak is { } b) Console.WriteLine($"  first break at sequence {b.Sequence}: {b.Kind}: {Cli.OneLine(b.Message)}");
            return report.Intact ? Cli.Ok : Cli.Failed;
        }));
        var exportApi = ApiOptions.Create();
        var export = new Command("export", "Export the audit trail to the host's audit container and publish its signed heads");
        exportApi.AddTo(export);
        export.SetAction((r, ct) => Cli.GuardAsync(async () =>
        {
            using var client = exportApi.Open(r);
            Console.WriteLine($"exported through sequence {await client.ExportAuditAsync(ct)}");
            return Cli.Ok;
        }));
        var audit = new Command("audit", "The tamper-evident audit trail, over the API");
        audit.Subcommands.Add(verify);
        audit.Subcommands.Add(export);
        return audit;
    }

    private static Command Compliance()
    {
        var api = ApiOptions.Create();
        var compliance = new Command("compliance", "The host's compliance report (keys, encryption at rest, audit, modules); exit 0 if compliant, 1 if not");
        api.AddTo(compliance);
        compliance.SetAction((r, ct) => Cli.GuardAsync(async () =>
        {
            using var client = api.Open(r);
            var report = await client.ComplianceAsync(ct);
            foreach (var check in report.Checks) Console.WriteLine($"{(check.Passed ? "pass" : "FAIL")}  {check.Rule}: {Cli.OneLine(check.Finding)}");
            Console.WriteLine(report.Compliant ? "compliant" : "not compliant");
            return report.Compliant ? Cli.Ok : Cli.Failed;
        }));
        return compliance;
    }

    /// <summary><see cref="Cli.Guard"/>, with the key files' refusals (permissions wider than 0600) reported as expected failures.</summary>
    private static int Guard(Func<int> body) => Cli.Guard(() =>
    {
        try
        {
            return body();
        }
        catch (KeyVaultException e)
        {
            throw new InvalidOperationException(e.Message, e);
        }
    });

    private static DevCertificateAuthority LoadCa(DirectoryInfo dir)
    {
        var pfx = Path.Combine(dir.FullName, "ca.pfx");
        if (!File.Exists(pfx)) throw new FileNotFoundException($"no CA at {pfx} (run 'admin ca create --out {dir.FullName}' first)");
        return DevCertificateAuthority.Load(pfx); // refuses a ca.pfx readable by others
    }

    /// <summary>Writes <c>name.pfx</c> (with key) and <c>name.key</c> (PKCS#8 PEM) as 0600, and <c>name.pem</c> (certificate only).</summary>
    private static void Write(string directory, string name, X509Certificate2 certificate)
    {
        using var key = certificate.GetECDsaPrivateKey() ?? throw new CryptographicException("the certificate has no ECDSA private key");
        WriteOwnerOnly(Path.Combine(directory, name + ".pfx"), certificate.Export(X509ContentType.Pkcs12));
        WriteOwnerOnly(Path.Combine(directory, name + ".key"), System.Text.Encoding.ASCII.GetBytes(key.ExportPkcs8PrivateKeyPem() + "\n"));
        File.WriteAllText(Path.Combine(directory, name + ".pem"), certificate.ExportCertificatePem() + "\n");
    }

    /// <summary>Creates the file 0600 from the start (never briefly wider), via a temporary file renamed over the target.</summary>
    private static void WriteOwnerOnly(string path, byte[] content)
    {
        var temp = path + $".tmp-{Environment.ProcessId}";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = OwnerOnly;
        try
        {
            using (var stream = new FileStream(temp, options))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(temp, OwnerOnly); // a pre-existing temp file keeps its old mode
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
        CryptographicOperations.ZeroMemory(content);
    }
}

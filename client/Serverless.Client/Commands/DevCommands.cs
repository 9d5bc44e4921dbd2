using System.CommandLine;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Serverless.Security;
using Serverless.Security.Authorization;
using Serverless.Security.Identity;
using Serverless.Security.Keys;

namespace Serverless.Client.Commands;

/// <summary>
/// Development security tools: <c>token issue</c>, <c>ca create | server | client</c>, <c>audit verify</c>.
/// Thin wrappers over <see cref="DevTools"/> and <see cref="DevCertificateAuthority"/>, using the same
/// data-directory layout as the host (keyring.bin + master.key, audit.db), so what they make the host accepts.
/// </summary>
internal static class DevCommands
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private static Option<DirectoryInfo> DataDirOption() => new("--data-dir")
    {
        Description = "The host's data directory (keyring.bin, master.key, audit.db); master key from env SERVERLESS_MASTER_KEY or master.key",
        Required = true,
    };

    public static Command Token()
    {
        var dataDir = DataDirOption();
        var subject = new Option<string>("--subject") { Description = "Subject (sub claim): the user or service the token names", Required = true };
        var roles = new Option<string[]>("--role")
        {
            Description = "Role (repeatable): " + string.Join(", ", RolePermissionTable.Default.Roles.Keys.Order(StringComparer.Ordinal)),
            Required = true, Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false,
        };
        var tenant = new Option<string?>("--tenant") { Description = "Tenant (hospital, partner) the token is scoped to; required by tenant-scoped roles" };
        var lifetime = new Option<TimeSpan?>("--lifetime") { Description = "Lifetime as hh:mm:ss (default 01:00:00, at most 1 day)" };
        var issue = new Command("issue", "Print a development bearer token (ES256 JWT) signed by the data directory's token-signing key")
            { dataDir, subject, roles, tenant, lifetime };
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
            var jwt = DevTools.IssueTokenAsync(r.GetValue(dataDir)!.FullName, r.GetValue(subject)!, roleList, tenantValue, r.GetValue(lifetime))
                .GetAwaiter().GetResult();
            Console.WriteLine(jwt);
            return Cli.Ok;
        }));
        var token = new Command("token", "Development bearer tokens");
        token.Subcommands.Add(issue);
        return token;
    }

    public static Command Ca()
    {
        var ca = new Command("ca", "A local development certificate authority for mutual TLS");
        ca.Subcommands.Add(CaCreate());
        ca.Subcommands.Add(CaServer());
        ca.Subcommands.Add(CaClient());
        return ca;
    }

    private static Option<DirectoryInfo> OutOption() => new("--out") { Description = "Output directory", Required = true };

    private static Option<DirectoryInfo> CaDirOption() => new("--ca") { Description = "Directory of the CA made by 'ca create' (ca.pfx)", Required = true };

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

    public static Command Audit()
    {
        var dataDir = DataDirOption();
        var signingKey = new Option<string>("--signing-key") { Description = "Vault key whose signatures count on checkpoints", DefaultValueFactory = _ => "audit-signing" };
        var verify = new Command("verify", "Verify audit.db's hash chain and signed checkpoints; exit 0 if intact, 1 if broken") { dataDir, signingKey };
        verify.SetAction(r => Guard(() =>
        {
            var report = DevTools.VerifyAuditAsync(r.GetValue(dataDir)!.FullName, r.GetValue(signingKey)!).GetAwaiter().GetResult();
            Console.WriteLine(report.ToText());
            foreach (var b in report.Breaks) Console.WriteLine($"  sequence {b.Sequence}: {b.Kind}: {Cli.OneLine(b.Message)}");
            return report.Intact ? Cli.Ok : Cli.Failed;
        }));
        var audit = new Command("audit", "The tamper-evident audit trail");
        audit.Subcommands.Add(verify);
        return audit;
    }

    /// <summary><see cref="Cli.Guard"/>, with the vault's refusals (key file permissions, wrong master key) reported as expected failures.</summary>
    private static int Guard(Func<int> body) => Cli.Guard(() =>
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is KeyVaultException or KeyNotFoundException)
        {
            throw new InvalidOperationException(e.Message, e);
        }
    });

    private static DevCertificateAuthority LoadCa(DirectoryInfo dir)
    {
        var pfx = Path.Combine(dir.FullName, "ca.pfx");
        if (!File.Exists(pfx)) throw new FileNotFoundException($"no CA at {pfx} (run 'ca create --out {dir.FullName}' first)");
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

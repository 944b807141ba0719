using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace LlmEmbedder.Tests.Checkpoints.Hub;

/// <summary>
/// A stand-in for huggingface.co on 127.0.0.1, speaking the parts of its HTTP API huggingface_hub uses:
/// GET /api/models/{repo}/revision/{rev} (JSON with "sha" and "siblings"), HEAD/GET /{repo}/resolve/{rev}/{file}
/// with ETag and X-Repo-Commit, and for LFS files a 302 to a second port (the CDN) carrying X-Linked-Etag and
/// X-Linked-Size, as the real hub does. ETags are what the hub sends: the git blob id (from `git hash-object`) for
/// git files, the SHA-256 for LFS files. Every request is recorded.
/// </summary>
internal sealed class FakeHub : IDisposable
{
    public sealed record Request(string Server, string Method, string Target, IReadOnlyDictionary<string, string> Headers)
    {
        public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;
    }

    public sealed class Repo
    {
        public required string Id { get; init; }
        public required string Commit { get; init; }
        public required IReadOnlyDictionary<string, byte[]> Files { get; init; }
        public required IReadOnlySet<string> LfsFiles { get; init; }
        public required IReadOnlyDictionary<string, string> Etags { get; init; }
        public IReadOnlySet<string> Revisions { get; init; } = new HashSet<string> { "main" };
        public string? RequiredToken { get; init; }
    }

    private readonly TcpListener hubListener = new(IPAddress.Loopback, 0);
    private readonly TcpListener cdnListener = new(IPAddress.Loopback, 0);
    private readonly ConcurrentDictionary<string, Repo> repos = new();
    private readonly CancellationTokenSource stopping = new();

    public FakeHub()
    {
        hubListener.Start();
        cdnListener.Start();
        _ = AcceptLoop(hubListener, "hub");
        _ = AcceptLoop(cdnListener, "cdn");
    }

    public string Endpoint => $"http://127.0.0.1:{((IPEndPoint)hubListener.LocalEndpoint).Port}";
    private string CdnBase => $"http://127.0.0.1:{((IPEndPoint)cdnListener.LocalEndpoint).Port}";

    public ConcurrentQueue<Request> Requests { get; } = new();

    /// <summary>The next CDN download sends its full Content-Length but only this many bytes, then closes the connection.</summary>
    public int? CutNextCdnDownloadAfter { get; set; }

    /// <summary>With CutNextCdnDownloadAfter: keep the connection open and silent instead of closing it.</summary>
    public bool StallAfterCut { get; set; }

    /// <summary>Files whose bytes are served with one byte flipped while their headers announce the true hash.</summary>
    public ConcurrentDictionary<string, bool> CorruptedFiles { get; } = new();

    public Repo AddRepo(string repoId, IReadOnlyDictionary<string, byte[]> files, IEnumerable<string> lfsFiles,
        IEnumerable<string>? revisions = null, string? requiredToken = null)
    {
        var lfs = lfsFiles.ToHashSet();
        var repo = new Repo
        {
            Id = repoId,
            Commit = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20)),
            Files = files,
            LfsFiles = lfs,
            Etags = files.ToDictionary(f => f.Key, f => lfs.Contains(f.Key) ? Convert.ToHexStringLower(SHA256.HashData(f.Value)) : GitHashObject(f.Value)),
            Revisions = (revisions ?? ["main"]).ToHashSet(),
            RequiredToken = requiredToken,
        };
        repos[repoId] = repo;
        return repo;
    }

    public List<Request> TakeRequests()
    {
        var taken = new List<Request>();
        while (Requests.TryDequeue(out var request)) taken.Add(request);
        return taken;
    }

    public void Dispose()
    {
        stopping.Cancel();
        hubListener.Stop();
        cdnListener.Stop();
    }

    /// <summary>The id git itself gives the bytes, which is what the hub uses as ETag for files not in LFS.</summary>
    public static string GitHashObject(byte[] content)
    {
        using var git = Process.Start(new ProcessStartInfo("git", "hash-object --stdin")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false,
        })!;
        git.StandardInput.BaseStream.Write(content);
        git.StandardInput.Close();
        var id = git.StandardOutput.ReadToEnd().Trim();
        git.WaitForExit();
        return id;
    }

    private async Task AcceptLoop(TcpListener listener, string server)
    {
        while (!stopping.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(stopping.Token);
            }
            catch (Exception) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            _ = Task.Run(() => Serve(client, server));
        }
    }

    private async Task Serve(TcpClient client, string server)
    {
        using var connection = client;
        try
        {
            var stream = connection.GetStream();
            var (method, target, headers) = ReadRequestHead(stream);
            var request = new Request(server, method, target, headers);
            Requests.Enqueue(request);
            if (server == "cdn")
                await ServeCdn(stream, request);
            else
                await ServeHub(stream, request);
        }
        catch (IOException)
        {
            // the client went away; nothing to answer
        }
    }

    private async Task ServeHub(NetworkStream stream, Request request)
    {
        var path = request.Target.Split('?')[0];
        const string apiPrefix = "/api/models/";
        if (request.Method == "GET" && path.StartsWith(apiPrefix, StringComparison.Ordinal) && path.LastIndexOf("/revision/", StringComparison.Ordinal) is > 0 and var revisionAt)
        {
            var repoId = path[apiPrefix.Length..revisionAt];
            var revision = Uri.UnescapeDataString(path[(revisionAt + "/revision/".Length)..]);
            if (Authorize(repoId, request) is { } refusal) { await refusal(stream); return; }
            if (!TryResolve(repoId, revision, out var repo)) { await RevisionNotFound(stream, request); return; }
            var listing = JsonSerializer.Serialize(new
            {
                id = repo.Id, modelId = repo.Id, sha = repo.Commit, @private = repo.RequiredToken is not null,
                siblings = repo.Files.Keys.Order(StringComparer.Ordinal).Select(name => new { rfilename = name }),
            });
            await Respond(stream, request, 200, "OK", [("Content-Type", "application/json")], Encoding.UTF8.GetBytes(listing));
            return;
        }

        var resolveAt = path.IndexOf("/resolve/", StringComparison.Ordinal);
        if (request.Method is "GET" or "HEAD" && resolveAt > 0)
        {
            var repoId = path[1..resolveAt];
            var rest = path[(resolveAt + "/resolve/".Length)..];
            var slash = rest.IndexOf('/');
            var revision = Uri.UnescapeDataString(rest[..slash]);
            var fileName = string.Join('/', rest[(slash + 1)..].Split('/').Select(Uri.UnescapeDataString));
            if (Authorize(repoId, request) is { } refusal) { await refusal(stream); return; }
            if (!TryResolve(repoId, revision, out var repo)) { await RevisionNotFound(stream, request); return; }
            if (!repo.Files.TryGetValue(fileName, out var content))
            {
                await Respond(stream, request, 404, "Not Found", [("X-Error-Code", "EntryNotFound")], "Entry not found"u8.ToArray());
                return;
            }
            var etag = repo.Etags[fileName];
            if (repo.LfsFiles.Contains(fileName))
            {
                await Respond(stream, request, 302, "Found",
                [
                    ("Location", $"{CdnBase}/repos/{repo.Id}/{etag}?X-Amz-Signature=fake"),
                    ("X-Repo-Commit", repo.Commit),
                    ("X-Linked-Etag", $"\"{etag}\""),
                    ("X-Linked-Size", content.Length.ToString()),
                    ("ETag", "W/\"pointer-file-etag\""), // the LFS pointer's own ETag, which must not name the blob
                ], "Found. Redirecting"u8.ToArray());
                return;
            }
            await Respond(stream, request, 200, "OK", [("ETag", $"\"{etag}\""), ("X-Repo-Commit", repo.Commit)], Corrupt(fileName, content));
            return;
        }
        await Respond(stream, request, 404, "Not Found", [], "no route"u8.ToArray());
    }

    private async Task ServeCdn(NetworkStream stream, Request request)
    {
        var parts = request.Target.Split('?')[0].Split('/'); // "", "repos", org, name..., sha256
        var sha = parts[^1];
        var repoId = string.Join('/', parts[2..^1]);
        var (fileName, content) = repos.TryGetValue(repoId, out var repo)
            ? repo.Files.Where(f => repo.Etags[f.Key] == sha).Select(f => (f.Key, f.Value)).FirstOrDefault()
            : default;
        if (content is null)
        {
            await Respond(stream, request, 404, "Not Found", [], "NoSuchKey"u8.ToArray());
            return;
        }

        content = Corrupt(fileName, content);
        long start = 0;
        var status = (200, "OK");
        var headers = new List<(string, string)> { ("ETag", $"\"{sha}\""), ("Accept-Ranges", "bytes") };
        if (request.Header("Range") is { } range && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            start = long.Parse(range["bytes=".Length..^1]);
            status = (206, "Partial Content");
            headers.Add(("Content-Range", $"bytes {start}-{content.Length - 1}/{content.Length}"));
        }
        var body = content[(int)start..];
        if (CutNextCdnDownloadAfter is int cut && request.Method == "GET")
        {
            CutNextCdnDownloadAfter = null;
            await WriteHead(stream, status.Item1, status.Item2, headers, body.Length);
            await stream.WriteAsync(body.AsMemory(0, cut));
            await stream.FlushAsync();
            if (StallAfterCut)
                await Task.Delay(Timeout.Infinite, stopping.Token).ContinueWith(_ => { });
            return; // the connection closes with the body short of its Content-Length
        }
        await Respond(stream, request, status.Item1, status.Item2, headers, body);
    }

    private byte[] Corrupt(string fileName, byte[] content)
    {
        if (!CorruptedFiles.ContainsKey(fileName)) return content;
        var copy = (byte[])content.Clone();
        copy[copy.Length / 2] ^= 0xFF;
        return copy;
    }

    private bool TryResolve(string repoId, string revision, out Repo repo)
    {
        repo = null!;
        if (!repos.TryGetValue(repoId, out var found)) return false;
        repo = found;
        return found.Revisions.Contains(revision) || found.Commit == revision;
    }

    // As huggingface.co: a private repo without a valid token answers 401 RepoNotFound, hiding that it exists.
    private Func<NetworkStream, Task>? Authorize(string repoId, Request request)
    {
        if (!repos.TryGetValue(repoId, out var repo))
            return stream => Respond(stream, request, 404, "Not Found", [("X-Error-Code", "RepoNotFound"), ("X-Error-Message", "Repository not found")], "{\"error\":\"Repository not found\"}"u8.ToArray());
        if (repo.RequiredToken is not null && request.Header("Authorization") != $"Bearer {repo.RequiredToken}")
            return stream => Respond(stream, request, 401, "Unauthorized", [("X-Error-Code", "RepoNotFound"), ("X-Error-Message", "Invalid username or password.")], "{\"error\":\"Repository not found\"}"u8.ToArray());
        return null;
    }

    private static Task RevisionNotFound(NetworkStream stream, Request request) =>
        Respond(stream, request, 404, "Not Found", [("X-Error-Code", "RevisionNotFound")], "{\"error\":\"Invalid rev id\"}"u8.ToArray());

    private static async Task Respond(NetworkStream stream, Request request, int status, string reason, IEnumerable<(string, string)> headers, byte[] body)
    {
        await WriteHead(stream, status, reason, headers, body.Length);
        if (request.Method != "HEAD")
            await stream.WriteAsync(body);
        await stream.FlushAsync();
    }

    private static async Task WriteHead(NetworkStream stream, int status, string reason, IEnumerable<(string Name, string Value)> headers, long contentLength)
    {
        var head = new StringBuilder($"HTTP/1.1 {status} {reason}\r\n");
        foreach (var (name, value) in headers)
            head.Append($"{name}: {value}\r\n");
        head.Append($"Content-Length: {contentLength}\r\nConnection: close\r\n\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()));
    }

    private static (string Method, string Target, Dictionary<string, string> Headers) ReadRequestHead(NetworkStream stream)
    {
        var bytes = new List<byte>();
        while (bytes.Count < 4 || !(bytes[^4] == '\r' && bytes[^3] == '\n' && bytes[^2] == '\r' && bytes[^1] == '\n'))
        {
            var next = stream.ReadByte();
            if (next < 0) throw new IOException("connection closed before the request head ended");
            bytes.Add((byte)next);
        }
        var lines = Encoding.ASCII.GetString(bytes.ToArray()).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var requestLine = lines[0].Split(' ');
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }
        return (requestLine[0], requestLine[1], headers);
    }
}

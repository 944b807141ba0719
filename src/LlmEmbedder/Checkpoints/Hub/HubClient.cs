using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;

namespace LlmEmbedder.Checkpoints.Hub;

/// <summary>The files of one revision as the hub lists them, at the commit that revision pointed to.</summary>
internal sealed record RepoListing(string Commit, IReadOnlySet<string> Files);

/// <summary>What a resolve request says about a file before its bytes are fetched.</summary>
internal sealed record RemoteFileInfo(string Etag, long? Size);

/// <summary>
/// HTTP conversations with the hub (or a mirror), using the URLs and headers huggingface_hub uses:
/// GET {endpoint}/api/models/{repo}/revision/{revision} for the listing, HEAD then GET
/// {endpoint}/{repo}/resolve/{commit}/{file} for each file. Every failure becomes one EmbedderException line.
/// </summary>
internal sealed class HubClient : IDisposable
{
    private const int MaxRedirects = 10;
    private const int CopyBufferBytes = 1 << 20;
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromMilliseconds(100);

    private readonly HubSettings settings;
    private readonly Uri endpoint;
    private readonly HttpClient http;

    public HubClient(HubSettings settings)
    {
        this.settings = settings;
        endpoint = new Uri(settings.Endpoint + "/");
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false, // redirects are followed by hand: HEAD must stop at the CDN, and the token must not go there
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = settings.MetadataTimeout,
        };
        http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        http.DefaultRequestHeaders.UserAgent.ParseAdd("llm-embedder/1.0");
    }

    public void Dispose() => http.Dispose();

    public async Task<RepoListing> GetListingAsync(HubModelId model, CancellationToken cancellation)
    {
        var url = new Uri(endpoint, $"api/models/{model.RepoId}/revision/{Uri.EscapeDataString(model.Revision)}");
        using var response = await SendAsync(HttpMethod.Get, url, followAbsoluteRedirects: true, rangeStart: 0, cancellation);
        ThrowIfFailed(response, model, repoFile: null);
        string body;
        using (var timeout = StartTimeout(settings.MetadataTimeout, cancellation))
        {
            try
            {
                body = await response.Content.ReadAsStringAsync(timeout.Token);
            }
            catch (Exception e) when (IsTimeout(e, cancellation))
            {
                throw TimedOut(url, settings.MetadataTimeout);
            }
            catch (Exception e) when (e is HttpRequestException or IOException)
            {
                throw new EmbedderException($"reading the file list of model '{model}' from {settings.Endpoint} failed ({e.Message})", e);
            }
        }
        return ParseListing(body, model);
    }

    private RepoListing ParseListing(string body, HubModelId model)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            var commit = root.TryGetProperty("sha", out var sha) && sha.ValueKind == JsonValueKind.String ? sha.GetString()! : "";
            if (!HubModelId.IsCommitHash(commit))
                throw new EmbedderException($"model '{model}': {settings.Endpoint} answered the file listing without a commit sha");
            var files = new HashSet<string>(StringComparer.Ordinal);
            if (root.TryGetProperty("siblings", out var siblings) && siblings.ValueKind == JsonValueKind.Array)
                foreach (var sibling in siblings.EnumerateArray())
                    if (sibling.TryGetProperty("rfilename", out var name) && name.GetString() is { Length: > 0 } fileName)
                        files.Add(fileName);
            return new RepoListing(commit, files);
        }
        catch (JsonException e)
        {
            throw new EmbedderException($"model '{model}': {settings.Endpoint} answered the file listing with invalid JSON ({e.Message})");
        }
    }

    /// <summary>
    /// HEAD on the resolve URL, following only redirects within the hub (renamed repos). A large file answers with a
    /// redirect to its CDN carrying X-Linked-Etag and X-Linked-Size, which is all we need from it.
    /// </summary>
    public async Task<RemoteFileInfo> GetFileInfoAsync(HubModelId model, string commit, string repoFile, CancellationToken cancellation)
    {
        var url = ResolveUrl(model, commit, repoFile);
        using var response = await SendAsync(HttpMethod.Head, url, followAbsoluteRedirects: false, rangeStart: 0, cancellation);
        var etag = Header(response, "X-Linked-Etag") ?? Header(response, "ETag");
        var size = ParseSize(Header(response, "X-Linked-Size"));
        if (IsRedirect(response.StatusCode) && etag is null)
        {
            // A mirror that redirects without X-Linked-Etag: ask the target itself.
            using var target = await SendAsync(HttpMethod.Head, new Uri(url, response.Headers.Location!), followAbsoluteRedirects: true, rangeStart: 0, cancellation);
            ThrowIfFailed(target, model, repoFile);
            etag = Header(target, "ETag");
            size ??= target.Content.Headers.ContentLength;
        }
        else
        {
            if (!IsRedirect(response.StatusCode))
                ThrowIfFailed(response, model, repoFile);
            size ??= response.Content.Headers.ContentLength;
        }

        etag = etag is null ? null : NormalizeEtag(etag);
        if (string.IsNullOrEmpty(etag))
            throw new EmbedderException($"model '{model}': {settings.Endpoint} sent no ETag for '{repoFile}', so it cannot be cached");
        if (etag.IndexOfAny(['/', '\\']) >= 0 || etag.StartsWith('.'))
            throw new EmbedderException($"model '{model}': {settings.Endpoint} sent an unusable ETag '{etag}' for '{repoFile}'");
        return new RemoteFileInfo(etag, size);
    }

    /// <summary>
    /// Streams the file into incompletePath, resuming from whatever an earlier interrupted attempt left there, and
    /// checks length and content hash against what the hub announced. The caller renames the result into place.
    /// </summary>
    public async Task DownloadAsync(HubModelId model, string commit, string repoFile, RemoteFileInfo info, string incompletePath,
        IProgress<DownloadProgress>? progress, CancellationToken cancellation)
    {
        var url = ResolveUrl(model, commit, repoFile);
        long resumeFrom = File.Exists(incompletePath) ? new FileInfo(incompletePath).Length : 0;
        if (info.Size is long announced && resumeFrom >= announced)
            resumeFrom = 0; // cannot be a prefix of the file; start over

        using var response = await SendAsync(HttpMethod.Get, url, followAbsoluteRedirects: true, rangeStart: resumeFrom, cancellation);
        var rangeRefused = response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable
            || (response.StatusCode == HttpStatusCode.PartialContent && response.Content.Headers.ContentRange?.From != resumeFrom);
        if (rangeRefused && resumeFrom > 0)
        {
            File.Delete(incompletePath); // what was kept is no prefix of this file, or the server will not continue it
            await DownloadAsync(model, commit, repoFile, info, incompletePath, progress, cancellation);
            return;
        }
        ThrowIfFailed(response, model, repoFile);
        if (response.StatusCode != HttpStatusCode.PartialContent)
            resumeFrom = 0; // the server ignored the range and sends everything
        long? total = info.Size ?? (response.Content.Headers.ContentLength is long rest ? resumeFrom + rest : null);

        using var verifier = BlobVerifier.For(info.Etag, total);
        using (var output = new FileStream(incompletePath, resumeFrom > 0 ? FileMode.Open : FileMode.Create, FileAccess.ReadWrite, FileShare.None, CopyBufferBytes))
        {
            if (resumeFrom > 0)
            {
                output.SetLength(resumeFrom);
                if (verifier is not null) await verifier.AppendAsync(output, cancellation);
                output.Seek(resumeFrom, SeekOrigin.Begin);
            }
            long done = resumeFrom;
            progress?.Report(new DownloadProgress(model.RepoId, repoFile, done, total));
            var sinceReport = System.Diagnostics.Stopwatch.StartNew();
            var buffer = new byte[CopyBufferBytes];
            try
            {
                await using var body = await response.Content.ReadAsStreamAsync(cancellation);
                int read;
                while ((read = await ReadFromNetworkAsync(body, buffer, done)) > 0)
                {
                    // Disk errors (a full disk) propagate as they are: they are not the network's fault.
                    await output.WriteAsync(buffer.AsMemory(0, read), cancellation);
                    verifier?.Append(buffer.AsSpan(0, read));
                    done += read;
                    if (sinceReport.Elapsed >= ProgressInterval)
                    {
                        progress?.Report(new DownloadProgress(model.RepoId, repoFile, done, total));
                        sinceReport.Restart();
                    }
                }
            }
            finally
            {
                await output.FlushAsync(CancellationToken.None);
            }

            async Task<int> ReadFromNetworkAsync(Stream body, byte[] into, long doneSoFar)
            {
                try
                {
                    using var stall = StartTimeout(settings.DownloadTimeout, cancellation);
                    return await body.ReadAsync(into, stall.Token);
                }
                catch (Exception e) when (IsTimeout(e, cancellation))
                {
                    throw new EmbedderException($"downloading '{repoFile}' of model '{model}' stalled for {settings.DownloadTimeout.TotalSeconds:0.#} s after {doneSoFar} of {total?.ToString() ?? "?"} bytes; run again to resume (HF_HUB_DOWNLOAD_TIMEOUT sets the limit)", e);
                }
                catch (Exception e) when (e is HttpRequestException or IOException && !cancellation.IsCancellationRequested)
                {
                    throw new EmbedderException($"downloading '{repoFile}' of model '{model}' was interrupted after {doneSoFar} of {total?.ToString() ?? "?"} bytes ({e.Message}); run again to resume", e);
                }
            }

            progress?.Report(new DownloadProgress(model.RepoId, repoFile, done, total));
            if (total is long expected && done != expected)
                throw new EmbedderException($"downloading '{repoFile}' of model '{model}' ended after {done} of {expected} bytes; run again to resume");
            output.Flush(flushToDisk: true);
        }

        if (verifier is not null && !verifier.Matches())
        {
            File.Delete(incompletePath);
            throw new EmbedderException($"downloading '{repoFile}' of model '{model}': content does not match the hub's checksum {info.Etag}; the partial file was deleted, run again");
        }
    }

    private Uri ResolveUrl(HubModelId model, string commit, string repoFile) =>
        new(endpoint, $"{model.RepoId}/resolve/{Uri.EscapeDataString(commit)}/{string.Join('/', repoFile.Split('/').Select(Uri.EscapeDataString))}");

    /// <summary>
    /// Sends one request, following redirects by hand. Relative redirects (renamed repos) are always followed;
    /// absolute ones (the CDN) only when asked, and without the token once the request leaves the hub's host.
    /// </summary>
    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri url, bool followAbsoluteRedirects, long rangeStart, CancellationToken cancellation)
    {
        for (var hop = 0; ; hop++)
        {
            using var request = new HttpRequestMessage(method, url);
            request.Headers.AcceptEncoding.ParseAdd("identity");
            if (settings.Token is not null && url.Authority == endpoint.Authority && url.Scheme == endpoint.Scheme)
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", settings.Token);
            if (rangeStart > 0)
                request.Headers.Range = new RangeHeaderValue(rangeStart, null);

            HttpResponseMessage response;
            using (var timeout = StartTimeout(settings.MetadataTimeout, cancellation))
            {
                try
                {
                    response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
                }
                catch (Exception e) when (IsTimeout(e, cancellation))
                {
                    throw TimedOut(url, settings.MetadataTimeout);
                }
                catch (HttpRequestException e)
                {
                    throw Unreachable(url, e);
                }
            }

            if (!IsRedirect(response.StatusCode) || response.Headers.Location is not { } location)
                return response;
            if (location.IsAbsoluteUri && !followAbsoluteRedirects)
                return response;
            if (hop == MaxRedirects)
            {
                response.Dispose();
                throw new EmbedderException($"{settings.Endpoint}: more than {MaxRedirects} redirects for {url}");
            }
            response.Dispose();
            url = new Uri(url, location);
        }
    }

    private HubUnreachableException Unreachable(Uri url, HttpRequestException e)
    {
        var site = url.Authority == endpoint.Authority ? settings.Endpoint : url.GetLeftPart(UriPartial.Authority);
        var reason = e.InnerException is SocketException socket ? socket.Message : e.Message;
        return new HubUnreachableException($"cannot reach {site} ({reason})", e);
    }

    private HubUnreachableException TimedOut(Uri url, TimeSpan limit)
    {
        var site = url.Authority == endpoint.Authority ? settings.Endpoint : url.GetLeftPart(UriPartial.Authority);
        return new HubUnreachableException($"{site} did not answer within {limit.TotalSeconds:0.#} s (HF_HUB_ETAG_TIMEOUT sets the limit)");
    }

    /// <summary>Turns an error status into one line naming the model, using the hub's X-Error-Code when present.</summary>
    private void ThrowIfFailed(HttpResponseMessage response, HubModelId model, string? repoFile)
    {
        if (response.IsSuccessStatusCode)
            return;
        var status = (int)response.StatusCode;
        var errorCode = Header(response, "X-Error-Code");
        var where = settings.Endpoint;
        var tokenHint = settings.Token is null
            ? "set HF_TOKEN to a token that can read it"
            : "the token in HF_TOKEN was not accepted for it";
        string message;
        if (repoFile is null && (errorCode == "RepoNotFound" || (status == 404 && errorCode is null)))
            message = status is 401 or 403
                ? $"model '{model.RepoId}' not found at {where} (HTTP {status}); if it is private or gated, {tokenHint}"
                : $"model '{model.RepoId}' not found at {where} (HTTP {status})";
        else if (errorCode == "RevisionNotFound")
            message = $"revision '{model.Revision}' of model '{model.RepoId}' not found at {where} (HTTP {status})";
        else if (errorCode == "GatedRepo")
            message = $"model '{model.RepoId}' at {where} is gated (HTTP {status}): accept its conditions on the model page and {tokenHint}";
        else if (status is 401 or 403)
            message = $"access to model '{model.RepoId}' at {where} was refused (HTTP {status}); {tokenHint}";
        else if (status == 404)
            message = $"file '{repoFile}' of model '{model}' not found at {where} (HTTP 404)";
        else
            message = $"{where} answered HTTP {status} {response.ReasonPhrase} for model '{model}'"
                + (repoFile is null ? "" : $" file '{repoFile}'")
                + (Header(response, "X-Error-Message") is { } detail ? $": {detail}" : "");
        throw new EmbedderException(message);
    }

    private static bool IsRedirect(HttpStatusCode status) => (int)status is 301 or 302 or 303 or 307 or 308;

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.NonValidated.TryGetValues(name, out var values) ? values.FirstOrDefault()
        : response.Content.Headers.NonValidated.TryGetValues(name, out var contentValues) ? contentValues.FirstOrDefault()
        : null;

    private static long? ParseSize(string? value) => long.TryParse(value, out var size) && size >= 0 ? size : null;

    // As huggingface_hub: a weak marker and the quotes are not part of the blob name.
    internal static string NormalizeEtag(string etag)
    {
        var value = etag.Trim();
        if (value.StartsWith("W/", StringComparison.Ordinal)) value = value[2..];
        return value.Trim('"');
    }

    private static CancellationTokenSource StartTimeout(TimeSpan limit, CancellationToken cancellation)
    {
        var source = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        source.CancelAfter(limit);
        return source;
    }

    private static bool IsTimeout(Exception e, CancellationToken caller) =>
        !caller.IsCancellationRequested && (e is OperationCanceledException || e.InnerException is TimeoutException);
}

/// <summary>The hub (or mirror, or CDN) did not answer: the case where a cached snapshot can stand in.</summary>
internal sealed class HubUnreachableException(string problem, Exception? inner = null)
    : EmbedderException($"{problem}; set HF_ENDPOINT to a mirror or HF_HUB_OFFLINE=1 to use the cache", inner!)
{
    /// <summary>What went wrong, without the advice.</summary>
    public string Problem { get; } = problem;
}

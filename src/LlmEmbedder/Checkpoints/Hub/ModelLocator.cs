namespace LlmEmbedder.Checkpoints.Hub;

/// <summary>
/// Turns what a user passes as --model into a folder on disk: a local directory as it is, a hub id
/// ("org/name", "name", optionally "@revision") as a snapshot folder in the Hugging Face cache, downloading what
/// is missing. With everything cached, an online call makes one request (the file listing, to learn which commit
/// the revision points to now) and downloads nothing; offline it makes none. When the hub does not answer that
/// first request and the revision is cached, the cached snapshot is used with a warning (as huggingface_hub does).
/// </summary>
public static class ModelLocator
{
    // Run on the thread pool so blocking here cannot deadlock a caller that has a synchronization context.
    public static string Resolve(string modelOrHubId, IProgress<DownloadProgress>? progress = null, HubOptions? options = null,
        Action<string>? warn = null) =>
        Task.Run(() => ResolveAsync(modelOrHubId, progress, options, warn)).GetAwaiter().GetResult();

    public static async Task<string> ResolveAsync(string modelOrHubId, IProgress<DownloadProgress>? progress = null,
        HubOptions? options = null, Action<string>? warn = null, CancellationToken cancellation = default)
    {
        if (Directory.Exists(modelOrHubId))
            return Path.GetFullPath(modelOrHubId);
        // As in transformers, only a directory shadows a hub id; a stray file of the same name does not.
        bool isHubId = HubModelId.TryParse(modelOrHubId, out var model);
        if (!isHubId && File.Exists(modelOrHubId))
            throw new EmbedderException($"{modelOrHubId}: is a file; expected a model directory or a Hugging Face hub id");
        if (MeantAsLocalPath(modelOrHubId) is { } why)
            throw new EmbedderException($"{modelOrHubId}: folder not found{why}");
        if (!isHubId)
            throw new EmbedderException($"{modelOrHubId}: no such model directory, and not a Hugging Face hub id (org/name[@revision])");

        var settings = HubSettings.From(options, Environment.GetEnvironmentVariable);
        var cache = new HubCache(settings.CacheDir, model.RepoId);
        if (settings.Offline)
            return CachedSnapshot(model, cache);

        try
        {
            return await DownloadAsync(model, cache, settings, progress, warn, cancellation);
        }
        catch (HubUnreachableException e)
        {
            // A typo of a local folder looks like a hub id too: say that neither was found.
            throw new EmbedderException($"no local folder {modelOrHubId}, and {e.Message}", e);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new EmbedderException($"{cache.RepoDir}: cannot write the Hugging Face cache ({e.Message}); set HF_HOME or HF_HUB_CACHE elsewhere", e);
        }
    }

    /// <summary>
    /// Why a missing <paramref name="text"/> is a local path rather than a hub id ("" or a note), or null when it may be
    /// a hub id: it starts with ./ ../ / or ~, has a backslash or more than one '/' before any @revision, or its first
    /// segment is a folder here (models/bge with ./models present).
    /// </summary>
    private static string? MeantAsLocalPath(string text)
    {
        if (text.StartsWith("./", StringComparison.Ordinal) || text.StartsWith("../", StringComparison.Ordinal) || text.StartsWith('/')
            || text.StartsWith('~') || text.Contains('\\'))
            return "";
        var repoPart = text.Split('@', 2)[0];
        var segments = repoPart.Split('/');
        if (segments.Length > 2) return "";
        if (segments.Length == 2 && Directory.Exists(segments[0]))
            return $" ({segments[0]}/ exists here, so this is taken for a local path, not a hub id)";
        return null;
    }

    private static async Task<string> DownloadAsync(HubModelId model, HubCache cache, HubSettings settings,
        IProgress<DownloadProgress>? progress, Action<string>? warn, CancellationToken cancellation)
    {
        using var client = new HubClient(settings);
        RepoListing listing;
        try
        {
            listing = await client.GetListingAsync(model, cancellation);
        }
        catch (HubUnreachableException e) when (TryCachedSnapshot(model, cache) is { } cached)
        {
            warn?.Invoke($"{e.Problem}; using the cached snapshot of '{model}' ({cached})");
            return cached;
        }
        var snapshotDir = cache.SnapshotDir(listing.Commit);

        var firstRound = HubFileSelection.FromListing(listing.Files);
        if (firstRound.Count == 0)
            throw new EmbedderException($"model '{model}' at {settings.Endpoint} has none of the files an embedding model needs (config.json, modules.json, weights)");
        foreach (var repoFile in firstRound)
            await FetchFileAsync(client, cache, settings, model, listing.Commit, repoFile, progress, cancellation);
        foreach (var repoFile in HubFileSelection.FromFetchedFiles(snapshotDir, listing.Files, model.ToString()))
            await FetchFileAsync(client, cache, settings, model, listing.Commit, repoFile, progress, cancellation);

        // Written last, so an offline run never follows a ref into a half-fetched snapshot.
        if (!model.RevisionIsCommit)
            cache.WriteRef(model.Revision, listing.Commit);
        return snapshotDir;
    }

    private static string? TryCachedSnapshot(HubModelId model, HubCache cache)
    {
        var commit = model.RevisionIsCommit ? model.Revision : cache.ReadRef(model.Revision);
        return commit is not null && Directory.Exists(cache.SnapshotDir(commit)) ? cache.SnapshotDir(commit) : null;
    }

    private static string CachedSnapshot(HubModelId model, HubCache cache) =>
        TryCachedSnapshot(model, cache) ?? throw new EmbedderException(
            $"model '{model}' is not in the Hugging Face cache at {cache.CacheDir}, and HF_HUB_OFFLINE=1 forbids downloading it; run once without HF_HUB_OFFLINE to fetch it");

    /// <summary>
    /// One file into blobs/ and the snapshot. Files are requested at the listed commit, not the branch, so a push
    /// during the download cannot mix two commits in one snapshot.
    /// </summary>
    private static async Task FetchFileAsync(HubClient client, HubCache cache, HubSettings settings, HubModelId model, string commit,
        string repoFile, IProgress<DownloadProgress>? progress, CancellationToken cancellation)
    {
        var pointer = cache.PointerPath(commit, repoFile);
        if (HubCache.PointerIsPresent(pointer))
            return;

        var info = await client.GetFileInfoAsync(model, commit, repoFile, cancellation);
        var blob = cache.BlobPath(info.Etag);
        using var blobLock = await cache.LockBlobAsync(info.Etag, cancellation);
        var blobIsNew = !File.Exists(blob);
        if (blobIsNew)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
            var incomplete = blob + HubCache.IncompleteSuffix;
            await client.DownloadAsync(model, commit, repoFile, info, incomplete, progress, cancellation);
            File.Move(incomplete, blob, overwrite: true);
        }
        cache.LinkIntoSnapshot(pointer, blob, blobIsNew, settings.SymlinksUnavailable);
    }
}

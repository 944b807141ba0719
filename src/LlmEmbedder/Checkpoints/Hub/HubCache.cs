namespace LlmEmbedder.Checkpoints.Hub;

/// <summary>
/// One repository's folder in the Hugging Face cache, laid out as huggingface_hub lays it so both share it:
/// models--org--name/{blobs/&lt;etag&gt;, snapshots/&lt;commit&gt;/&lt;file&gt; -> ../../blobs/&lt;etag&gt;, refs/&lt;revision&gt;},
/// and the cache-wide .locks/models--org--name/&lt;etag&gt;.lock.
/// </summary>
internal sealed class HubCache(string cacheDir, string repoId)
{
    public const string IncompleteSuffix = ".incomplete";
    private static readonly TimeSpan LockPollInterval = TimeSpan.FromMilliseconds(100);

    public string CacheDir { get; } = cacheDir;
    public string RepoFolderName { get; } = "models--" + repoId.Replace("/", "--");
    public string RepoDir => Path.Combine(CacheDir, RepoFolderName);

    public string BlobPath(string etag) => Path.Combine(RepoDir, "blobs", etag);

    public string SnapshotDir(string commit) => Path.Combine(RepoDir, "snapshots", commit);

    public string RefPath(string revision) => Path.Combine([RepoDir, "refs", .. revision.Split('/')]);

    /// <summary>Where a repo file appears in a snapshot; refuses names that would land outside it.</summary>
    public string PointerPath(string commit, string repoFile)
    {
        var snapshot = SnapshotDir(commit);
        var pointer = Path.GetFullPath(Path.Combine([snapshot, .. repoFile.Split('/')]));
        if (!pointer.StartsWith(snapshot + Path.DirectorySeparatorChar, StringComparison.Ordinal) || repoFile.Contains('\\'))
            throw new EmbedderException($"model '{repoId}': the hub lists a file named '{repoFile}', which is not a safe relative path");
        return pointer;
    }

    /// <summary>True when the snapshot already has the file, following the symlink (a dangling one does not count).</summary>
    public static bool PointerIsPresent(string pointerPath) => File.Exists(pointerPath);

    public string? ReadRef(string revision)
    {
        var path = RefPath(revision);
        return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
    }

    // huggingface_hub writes the bare hash without a newline.
    public void WriteRef(string revision, string commit)
    {
        if (ReadRef(revision) != commit)
            FileUtil.WriteAllTextAtomic(RefPath(revision), commit);
    }

    /// <summary>
    /// Holds the blob's lock file exclusively. .NET takes an flock on FileShare.None, the same lock Python's filelock
    /// takes, so a concurrent huggingface_hub download of the same blob waits for us and we for it.
    /// </summary>
    public async Task<IDisposable> LockBlobAsync(string etag, CancellationToken cancellation)
    {
        var lockPath = Path.Combine(CacheDir, ".locks", RepoFolderName, etag + ".lock");
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        while (true)
        {
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (File.Exists(lockPath))
            {
                await Task.Delay(LockPollInterval, cancellation);
            }
        }
    }

    /// <summary>
    /// Makes the snapshot entry point at the blob with a relative symlink. Where symlinks cannot be made the file
    /// goes into the snapshot itself, as huggingface_hub does then: a blob fetched just now is moved, an older one copied.
    /// </summary>
    public void LinkIntoSnapshot(string pointerPath, string blobPath, bool blobIsNew, bool symlinksUnavailable)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(pointerPath)!);
        DeleteStalePointer(pointerPath);
        if (!symlinksUnavailable)
        {
            try
            {
                File.CreateSymbolicLink(pointerPath, Path.GetRelativePath(Path.GetDirectoryName(pointerPath)!, blobPath));
                return;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
            {
                DeleteStalePointer(pointerPath);
            }
        }

        if (blobIsNew)
        {
            File.Move(blobPath, pointerPath);
            return;
        }
        var copyPath = pointerPath + IncompleteSuffix;
        File.Copy(blobPath, copyPath, overwrite: true);
        File.Move(copyPath, pointerPath);
    }

    // A dangling symlink (its blob deleted by a cache cleaner) is invisible to File.Exists but still blocks creation.
    private static void DeleteStalePointer(string pointerPath)
    {
        var info = new FileInfo(pointerPath);
        if (info.Exists || info.LinkTarget is not null)
            info.Delete();
    }
}

using System.Net;
using System.Net.Sockets;
using System.Text;
using LlmEmbedder.Checkpoints.Hub;

namespace LlmEmbedder.Tests.Checkpoints.Hub;

/// <summary>
/// ModelLocator against a fake huggingface.co on loopback. The expected cache trees are written out from the
/// layout the Hub Local Cache document specifies, with blob names from git and SHA-256 computed by the fake hub.
/// </summary>
public sealed class ModelLocatorAgainstFakeHubTests : IDisposable
{
    private readonly FakeHub hub = new();
    private readonly string cacheDir = TestPaths.NewTempDir("hub-cache");

    public void Dispose()
    {
        hub.Dispose();
        Directory.Delete(cacheDir, recursive: true);
    }

    private HubOptions Options(string? token = null, bool offline = false) =>
        new() { Endpoint = hub.Endpoint, CacheDir = cacheDir, Token = token, Offline = offline };

    private sealed class RecordingProgress : IProgress<DownloadProgress>
    {
        public List<DownloadProgress> Reports { get; } = [];
        public void Report(DownloadProgress value) { lock (Reports) Reports.Add(value); }
    }

    /// <summary>Every file and symlink under the cache, as "path (N bytes)" or "path -> target".</summary>
    private List<string> CacheTree() =>
        Directory.EnumerateFileSystemEntries(cacheDir, "*", SearchOption.AllDirectories)
            .Select(path => new FileInfo(path))
            .Where(info => info.LinkTarget is not null || !info.Attributes.HasFlag(FileAttributes.Directory))
            .Select(info =>
            {
                var relative = Path.GetRelativePath(cacheDir, info.FullName).Replace('\\', '/');
                return info.LinkTarget is { } target ? $"{relative} -> {target}" : $"{relative} ({info.Length} bytes)";
            })
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>The tree huggingface_hub leaves after fetching these files at the repo's commit through a named revision.</summary>
    private static List<string> ExpectedTree(FakeHub.Repo repo, IEnumerable<string> files, string? revision = "main")
    {
        var folder = "models--" + repo.Id.Replace("/", "--");
        var tree = new List<string>();
        foreach (var file in files)
        {
            var etag = repo.Etags[file];
            var depth = file.Count(c => c == '/');
            tree.Add($"{folder}/blobs/{etag} ({repo.Files[file].Length} bytes)");
            tree.Add($"{folder}/snapshots/{repo.Commit}/{file} -> {string.Concat(Enumerable.Repeat("../", depth + 2))}blobs/{etag}");
            tree.Add($".locks/{folder}/{etag}.lock (0 bytes)");
        }
        if (revision is not null)
            tree.Add($"{folder}/refs/{revision} (40 bytes)");
        return tree.Distinct().Order(StringComparer.Ordinal).ToList();
    }

    private static void AssertSnapshotHolds(FakeHub.Repo repo, string snapshot, IEnumerable<string> files)
    {
        foreach (var file in files)
            Assert.Equal(repo.Files[file], File.ReadAllBytes(Path.Combine(snapshot, file)));
    }

    [Fact]
    public void DownloadsWhatAnEmbeddingModelNeedsIntoTheHuggingFaceCacheLayout()
    {
        var repo = HubRepos.AddBge(hub);
        var progress = new RecordingProgress();

        var snapshot = ModelLocator.Resolve(HubRepos.BgeId, progress, Options());

        Assert.Equal(Path.Combine(cacheDir, "models--BAAI--bge-small-zh-v1.5", "snapshots", repo.Commit), snapshot);
        Assert.Equal(ExpectedTree(repo, HubRepos.BgeWanted), CacheTree());
        Assert.Equal(repo.Commit, File.ReadAllText(Path.Combine(cacheDir, "models--BAAI--bge-small-zh-v1.5", "refs", "main")));
        AssertSnapshotHolds(repo, snapshot, HubRepos.BgeWanted);

        var weightReports = progress.Reports.Where(r => r.File == "model.safetensors").ToList();
        Assert.Equal(new DownloadProgress(HubRepos.BgeId, "model.safetensors", 0, HubRepos.BgeWeightsBytes), weightReports[0]);
        Assert.Equal(new DownloadProgress(HubRepos.BgeId, "model.safetensors", HubRepos.BgeWeightsBytes, HubRepos.BgeWeightsBytes), weightReports[^1]);
        Assert.True(weightReports.Zip(weightReports.Skip(1)).All(pair => pair.First.BytesDone <= pair.Second.BytesDone));
        Assert.Equal(HubRepos.BgeWanted.Order(), progress.Reports.Select(r => r.File).Distinct().Order());

        // The weights' HEAD stops at the hub's redirect (X-Linked-Etag names the blob); only their GET goes to the CDN.
        var requests = hub.TakeRequests();
        Assert.Equal(["GET /repos/BAAI/bge-small-zh-v1.5/" + repo.Etags["model.safetensors"] + "?X-Amz-Signature=fake"],
            requests.Where(r => r.Server == "cdn").Select(r => $"{r.Method} {r.Target}"));
        Assert.Equal($"/api/models/{HubRepos.BgeId}/revision/main", requests[0].Target);
        Assert.All(requests.Where(r => r.Server == "hub").Skip(1),
            r => Assert.StartsWith($"/{HubRepos.BgeId}/resolve/{repo.Commit}/", r.Target));
    }

    [Fact]
    public void SecondResolveMakesOnlyTheListingRequestAndDownloadsNothing()
    {
        HubRepos.AddBge(hub);
        var first = ModelLocator.Resolve(HubRepos.BgeId, options: Options());
        var treeAfterFirst = CacheTree();
        hub.TakeRequests();
        var progress = new RecordingProgress();

        var second = ModelLocator.Resolve(HubRepos.BgeId, progress, Options());

        Assert.Equal(first, second);
        Assert.Equal([$"GET /api/models/{HubRepos.BgeId}/revision/main"], hub.TakeRequests().Select(r => $"{r.Method} {r.Target}"));
        Assert.Empty(progress.Reports);
        Assert.Equal(treeAfterFirst, CacheTree());
    }

    [Fact]
    public void NewCommitDownloadsOnlyChangedFilesAndSharesTheOtherBlobs()
    {
        var old = HubRepos.AddBge(hub);
        ModelLocator.Resolve(HubRepos.BgeId, options: Options());
        var files = HubRepos.BgeFiles();
        files["config.json"] = Encoding.UTF8.GetBytes("{\"model_type\": \"bert\", \"hidden_size\": 512}");
        var updated = hub.AddRepo(HubRepos.BgeId, files, HubRepos.BgeLfsFiles);
        hub.TakeRequests();

        var snapshot = ModelLocator.Resolve(HubRepos.BgeId, options: Options());

        Assert.Equal(Path.Combine(cacheDir, "models--BAAI--bge-small-zh-v1.5", "snapshots", updated.Commit), snapshot);
        Assert.Equal(ExpectedTree(old, HubRepos.BgeWanted, revision: null).Union(ExpectedTree(updated, HubRepos.BgeWanted)).Order(StringComparer.Ordinal), CacheTree());
        Assert.Equal(updated.Commit, File.ReadAllText(Path.Combine(cacheDir, "models--BAAI--bge-small-zh-v1.5", "refs", "main")));
        var downloads = hub.TakeRequests().Where(r => r.Method == "GET" && !r.Target.StartsWith("/api/", StringComparison.Ordinal)).ToList();
        Assert.Equal([$"/{HubRepos.BgeId}/resolve/{updated.Commit}/config.json"], downloads.Select(r => r.Target));
        AssertSnapshotHolds(updated, snapshot, HubRepos.BgeWanted);
    }

    [Fact]
    public void ShardedSafetensorsAndSentenceTransformersModuleFoldersAreFetched()
    {
        var index = """
            {"metadata": {"total_size": 3000},
             "weight_map": {"embeddings.word_embeddings.weight": "model-00001-of-00002.safetensors",
                            "encoder.layer.0.output.dense.weight": "model-00002-of-00002.safetensors",
                            "pooler.dense.weight": "model-00002-of-00002.safetensors"}}
            """;
        var modules = """[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},{"idx":2,"name":"2","path":"2_Dense/","type":"sentence_transformers.models.Dense"}]""";
        var files = new Dictionary<string, byte[]>
        {
            ["config.json"] = File.ReadAllBytes(TestPaths.Fixture("bge-large-zh-v1.5", "config.json")),
            ["vocab.txt"] = File.ReadAllBytes(Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt")),
            ["model.safetensors.index.json"] = Encoding.UTF8.GetBytes(index),
            ["model-00001-of-00002.safetensors"] = HubRepos.RandomBytes(1_500, 10),
            ["model-00002-of-00002.safetensors"] = HubRepos.RandomBytes(1_500, 11),
            ["pytorch_model.bin"] = HubRepos.RandomBytes(3_000, 12),
            ["modules.json"] = Encoding.UTF8.GetBytes(modules),
            ["1_Pooling/config.json"] = File.ReadAllBytes(TestPaths.Fixture("bge-small-zh-v1.5", "1_Pooling", "config.json")),
            ["2_Dense/config.json"] = Encoding.UTF8.GetBytes("{\"in_features\": 1024, \"out_features\": 768, \"bias\": true}"),
            ["2_Dense/model.safetensors"] = HubRepos.RandomBytes(700, 13),
            ["2_Dense/pytorch_model.bin"] = HubRepos.RandomBytes(700, 14),
            ["2_Dense/rust_model.ot"] = HubRepos.RandomBytes(700, 15),
            ["openvino/openvino_model.xml"] = Encoding.UTF8.GetBytes("<net/>"),
        };
        var repo = hub.AddRepo("org/sharded", files, ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "pytorch_model.bin", "2_Dense/model.safetensors", "2_Dense/pytorch_model.bin", "2_Dense/rust_model.ot"]);
        string[] wanted =
        [
            "config.json", "vocab.txt", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
            "modules.json", "1_Pooling/config.json", "2_Dense/config.json", "2_Dense/model.safetensors",
        ];

        var snapshot = ModelLocator.Resolve("org/sharded", options: Options());

        Assert.Equal(ExpectedTree(repo, wanted), CacheTree());
        AssertSnapshotHolds(repo, snapshot, wanted);
    }

    [Fact]
    public void PytorchWeightsAndDensePoolerOfALegacyNameOnlyRepo()
    {
        var files = new Dictionary<string, byte[]>
        {
            ["config.json"] = File.ReadAllBytes(TestPaths.Fixture("bge-small-zh-v1.5", "config.json")),
            ["vocab.txt"] = File.ReadAllBytes(Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt")),
            ["pytorch_model.bin"] = HubRepos.RandomBytes(5_000, 20),
            ["dense_pooler.bin"] = HubRepos.RandomBytes(600, 21),
            ["tf_model.h5"] = HubRepos.RandomBytes(5_000, 22),
            ["flax_model.msgpack"] = HubRepos.RandomBytes(5_000, 23),
        };
        var repo = hub.AddRepo("bert-legacy", files, ["pytorch_model.bin", "tf_model.h5", "flax_model.msgpack"]);

        var snapshot = ModelLocator.Resolve("bert-legacy", options: Options());

        string[] wanted = ["config.json", "vocab.txt", "pytorch_model.bin", "dense_pooler.bin"];
        Assert.Equal(ExpectedTree(repo, wanted), CacheTree());
        Assert.StartsWith(Path.Combine(cacheDir, "models--bert-legacy", "snapshots"), snapshot);
        AssertSnapshotHolds(repo, snapshot, wanted);
    }

    [Fact]
    public void RevisionsAreTrackedUnderRefsAndACommitPinWritesNoRef()
    {
        var repo = HubRepos.AddBge(hub, revisions: ["main", "v1.0", "refs/pr/1"]);

        var byTag = ModelLocator.Resolve(HubRepos.BgeId + "@v1.0", options: Options());
        var byPr = ModelLocator.Resolve(HubRepos.BgeId + "@refs/pr/1", options: Options());
        var byCommit = ModelLocator.Resolve($"{HubRepos.BgeId}@{repo.Commit}", options: Options());

        Assert.Equal(byTag, byPr);
        Assert.Equal(byTag, byCommit);
        var refs = Path.Combine(cacheDir, "models--BAAI--bge-small-zh-v1.5", "refs");
        Assert.Equal(["refs/pr/1", "v1.0"], Directory.EnumerateFiles(refs, "*", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(refs, path)).Order(StringComparer.Ordinal));
        Assert.Equal(repo.Commit, File.ReadAllText(Path.Combine(refs, "refs", "pr", "1")));
        // huggingface_hub quotes the whole revision, slashes included, in the listing URL.
        Assert.Contains(hub.TakeRequests(), r => r.Target == $"/api/models/{HubRepos.BgeId}/revision/refs%2Fpr%2F1");

        var error = Assert.Throws<EmbedderException>(() => ModelLocator.Resolve(HubRepos.BgeId + "@v9", options: Options()));
        Assert.Equal($"revision 'v9' of model '{HubRepos.BgeId}' not found at {hub.Endpoint} (HTTP 404)", error.Message);
    }

    [Fact]
    public void TokenIsSentToTheHubButNotToTheCdnAndItsAbsenceIsExplained()
    {
        var repo = HubRepos.AddBge(hub, requiredToken: "hf_secret");

        var refused = Assert.Throws<EmbedderException>(() => ModelLocator.Resolve(HubRepos.BgeId, options: Options()));
        Assert.Equal($"model '{HubRepos.BgeId}' not found at {hub.Endpoint} (HTTP 401); if it is private or gated, set HF_TOKEN to a token that can read it", refused.Message);
        var wrongToken = Assert.Throws<EmbedderException>(() => ModelLocator.Resolve(HubRepos.BgeId, options: Options(token: "hf_wrong")));
        Assert.Contains("the token in HF_TOKEN was not accepted", wrongToken.Message);
        hub.TakeRequests();

        var snapshot = ModelLocator.Resolve(HubRepos.BgeId, options: Options(token: "hf_secret"));

        AssertSnapshotHolds(repo, snapshot, HubRepos.BgeWanted);
        var requests = hub.TakeRequests();
        Assert.All(requests.Where(r => r.Server == "hub"), r => Assert.Equal("Bearer hf_secret", r.Header("Authorization")));
        Assert.All(requests.Where(r => r.Server == "cdn"), r => Assert.Null(r.Header("Authorization")));
        Assert.Contains(requests, r => r.Server == "cdn");
    }

    [Fact]
    public void OfflineModeUsesTheCacheWithoutNetworkAndExplainsWhatIsMissing()
    {
        var repo = HubRepos.AddBge(hub, revisions: ["main", "v1.0"]);
        var online = ModelLocator.Resolve(HubRepos.BgeId, options: Options());
        hub.TakeRequests();

        var offline = ModelLocator.Resolve(HubRepos.BgeId, options: Options(offline: true) with { Endpoint = ClosedPortEndpoint() });
        var offlineByCommit = ModelLocator.Resolve($"{HubRepos.BgeId}@{repo.Commit}", options: Options(offline: true));

        Assert.Equal(online, offline);
        Assert.Equal(online, offlineByCommit);
        Assert.Empty(hub.TakeRequests());
        var notCached = Assert.Throws<EmbedderException>(() => ModelLocator.Resolve(HubRepos.BgeId + "@v1.0", options: Options(offline: true)));
        Assert.Equal($"model '{HubRepos.BgeId}@v1.0' is not in the Hugging Face cache at {cacheDir}, and HF_HUB_OFFLINE=1 forbids downloading it; run once without HF_HUB_OFFLINE to fetch it", notCached.Message);
        Assert.Throws<EmbedderException>(() => ModelLocator.Resolve("org/never-fetched", options: Options(offline: true)));
        Assert.Empty(hub.TakeRequests());
    }

    [Fact]
    public void UnknownRepoIsReportedAsNotFoundAtTheEndpoint()
    {
        var error = Assert.Throws<EmbedderException>(() => ModelLocator.Resolve("nobody/nothing", options: Options()));

        Assert.Equal($"model 'nobody/nothing' not found at {hub.Endpoint} (HTTP 404)", error.Message);
        Assert.False(Directory.Exists(Path.Combine(cacheDir, "models--nobody--nothing")));
    }

    [Fact]
    public void UnreachableEndpointSuggestsAMirrorOrOfflineMode()
    {
        var endpoint = ClosedPortEndpoint();

        var error = Assert.ThrowsAny<EmbedderException>(() => ModelLocator.Resolve(HubRepos.BgeId, options: Options() with { Endpoint = endpoint }));

        // The id could also be a local folder with a typo: the message says there is none.
        Assert.StartsWith($"no local folder {HubRepos.BgeId}, and cannot reach {endpoint} (", error.Message);
        Assert.Contains("refused", error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.EndsWith("); set HF_ENDPOINT to a mirror or HF_HUB_OFFLINE=1 to use the cache", error.Message);
    }

    [Fact]
    public void UnreachableEndpointFallsBackToTheCachedSnapshotWithAWarning()
    {
        var repo = HubRepos.AddBge(hub);
        var cached = ModelLocator.Resolve(HubRepos.BgeId, options: Options());
        var treeBefore = CacheTree();
        var endpoint = ClosedPortEndpoint();
        var warnings = new List<string>();

        var resolved = ModelLocator.Resolve(HubRepos.BgeId, options: Options() with { Endpoint = endpoint }, warn: warnings.Add);

        Assert.Equal(cached, resolved);
        AssertSnapshotHolds(repo, resolved, HubRepos.BgeWanted);
        Assert.Equal(treeBefore, CacheTree());
        var warning = Assert.Single(warnings);
        Assert.StartsWith($"cannot reach {endpoint} (", warning);
        Assert.EndsWith($"); using the cached snapshot of '{HubRepos.BgeId}' ({cached})", warning);

        // Another revision that was never fetched has nothing to fall back on: the error stays.
        var error = Assert.ThrowsAny<EmbedderException>(() => ModelLocator.Resolve(HubRepos.BgeId + "@v2", options: Options() with { Endpoint = endpoint }));
        Assert.StartsWith($"no local folder {HubRepos.BgeId}@v2, and cannot reach {endpoint} (", error.Message);
    }

    [Fact]
    public void SilentEndpointTimesOut()
    {
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start(); // accepts connections (the backlog does) but never answers
        var endpoint = $"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}";
        var started = DateTime.UtcNow;

        var error = Assert.ThrowsAny<EmbedderException>(() => ModelLocator.Resolve(HubRepos.BgeId,
            options: Options() with { Endpoint = endpoint, MetadataTimeout = TimeSpan.FromMilliseconds(300) }));

        Assert.Equal($"no local folder {HubRepos.BgeId}, and {endpoint} did not answer within 0.3 s (HF_HUB_ETAG_TIMEOUT sets the limit); set HF_ENDPOINT to a mirror or HF_HUB_OFFLINE=1 to use the cache", error.Message);
        Assert.InRange(DateTime.UtcNow - started, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void InterruptedDownloadLeavesNothingThatLooksCompleteAndTheRetryResumes()
    {
        var repo = HubRepos.AddBge(hub);
        var weightsEtag = repo.Etags["model.safetensors"];
        var repoDir = Path.Combine(cacheDir, "models--BAAI--bge-small-zh-v1.5");
        hub.CutNextCdnDownloadAfter = 100_000;

        var error = Assert.Throws<EmbedderException>(() => ModelLocator.Resolve(HubRepos.BgeId, options: Options()));

        Assert.StartsWith($"downloading 'model.safetensors' of model '{HubRepos.BgeId}' was interrupted after 100000 of {HubRepos.BgeWeightsBytes} bytes (", error.Message);
        Assert.EndsWith("); run again to resume", error.Message);
        Assert.False(File.Exists(Path.Combine(repoDir, "blobs", weightsEtag)));
        Assert.Equal(100_000, new FileInfo(Path.Combine(repoDir, "blobs", weightsEtag + ".incomplete")).Length);
        Assert.False(File.Exists(Path.Combine(repoDir, "snapshots", repo.Commit, "model.safetensors")));
        Assert.False(Directory.Exists(Path.Combine(repoDir, "refs")));
        Assert.Throws<EmbedderException>(() => ModelLocator.Resolve(HubRepos.BgeId, options: Options(offline: true)));
        hub.TakeRequests();

        var snapshot = ModelLocator.Resolve(HubRepos.BgeId, options: Options());

        var cdnRequest = Assert.Single(hub.TakeRequests(), r => r.Server == "cdn");
        Assert.Equal("bytes=100000-", cdnRequest.Header("Range"));
        Assert.Equal(ExpectedTree(repo, HubRepos.BgeWanted), CacheTree());
        AssertSnapshotHolds(repo, snapshot, HubRepos.BgeWanted);
    }

    [Fact]
    public void StalledDownloadTimesOutAndKeepsTheBytesForTheRetry()
    {
        var repo = HubRepos.AddBge(hub);
        hub.CutNextCdnDownloadAfter = 50_000;
        hub.StallAfterCut = true;

        var error = Assert.Throws<EmbedderException>(() => ModelLocator.Resolve(HubRepos.BgeId,
            options: Options() with { DownloadTimeout = TimeSpan.FromMilliseconds(300) }));

        Assert.Equal($"downloading 'model.safetensors' of model '{HubRepos.BgeId}' stalled for 0.3 s after 50000 of {HubRepos.BgeWeightsBytes} bytes; run again to resume (HF_HUB_DOWNLOAD_TIMEOUT sets the limit)", error.Message);
        var snapshot = ModelLocator.Resolve(HubRepos.BgeId, options: Options());
        AssertSnapshotHolds(repo, snapshot, HubRepos.BgeWanted);
    }

    [Theory]
    [InlineData("vocab.txt")] // git blob id
    [InlineData("model.safetensors")] // LFS SHA-256
    public void ContentNotMatchingTheHubChecksumIsRejected(string corrupted)
    {
        var repo = HubRepos.AddBge(hub);
        hub.CorruptedFiles[corrupted] = true;
        var blobs = Path.Combine(cacheDir, "models--BAAI--bge-small-zh-v1.5", "blobs");

        var error = Assert.Throws<EmbedderException>(() => ModelLocator.Resolve(HubRepos.BgeId, options: Options()));

        Assert.Equal($"downloading '{corrupted}' of model '{HubRepos.BgeId}': content does not match the hub's checksum {repo.Etags[corrupted]}; the partial file was deleted, run again", error.Message);
        Assert.False(File.Exists(Path.Combine(blobs, repo.Etags[corrupted])));
        Assert.False(File.Exists(Path.Combine(blobs, repo.Etags[corrupted] + ".incomplete")));
        hub.CorruptedFiles.Clear();
        AssertSnapshotHolds(repo, ModelLocator.Resolve(HubRepos.BgeId, options: Options()), HubRepos.BgeWanted);
    }

    [Fact]
    public async Task ConcurrentResolvesOfOneModelDownloadEachBlobOnce()
    {
        var repo = HubRepos.AddBge(hub);

        var snapshots = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Task.Run(() => ModelLocator.ResolveAsync(HubRepos.BgeId, options: Options()))));

        Assert.All(snapshots, snapshot => Assert.Equal(snapshots[0], snapshot));
        Assert.Single(hub.TakeRequests(), r => r.Server == "cdn");
        Assert.Equal(ExpectedTree(repo, HubRepos.BgeWanted), CacheTree());
        AssertSnapshotHolds(repo, snapshots[0], HubRepos.BgeWanted);
    }

    [Fact]
    public void WithoutSymlinksTheSnapshotHoldsTheFilesThemselves()
    {
        var repo = HubRepos.AddBge(hub);
        var options = Options() with { SymlinksUnavailable = true };

        var snapshot = ModelLocator.Resolve(HubRepos.BgeId, options: options);

        AssertSnapshotHolds(repo, snapshot, HubRepos.BgeWanted);
        Assert.All(HubRepos.BgeWanted, file => Assert.Null(new FileInfo(Path.Combine(snapshot, file)).LinkTarget));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(cacheDir, "models--BAAI--bge-small-zh-v1.5", "blobs")));
        hub.TakeRequests();
        Assert.Equal(snapshot, ModelLocator.Resolve(HubRepos.BgeId, options: options));
        Assert.Single(hub.TakeRequests());
    }

    [Fact]
    public void UnwritableCacheIsReportedWithItsPath()
    {
        HubRepos.AddBge(hub);
        var notAFolder = Path.Combine(cacheDir, "occupied");
        File.WriteAllText(notAFolder, "a file where the cache folder should go");
        var options = Options() with { CacheDir = Path.Combine(notAFolder, "hub") };

        var error = Assert.Throws<EmbedderException>(() => ModelLocator.Resolve(HubRepos.BgeId, options: options));

        Assert.StartsWith($"{Path.Combine(notAFolder, "hub", "models--BAAI--bge-small-zh-v1.5")}: cannot write the Hugging Face cache (", error.Message);
        Assert.EndsWith("); set HF_HOME or HF_HUB_CACHE elsewhere", error.Message);
    }

    [Fact]
    public void LocalDirectoriesAreReturnedWithoutTouchingTheNetwork()
    {
        var options = Options() with { Endpoint = ClosedPortEndpoint() };
        var relative = Path.GetRelativePath(Environment.CurrentDirectory, TestPaths.ChineseVocabDir);

        Assert.Equal(TestPaths.ChineseVocabDir, ModelLocator.Resolve(TestPaths.ChineseVocabDir, options: options));
        Assert.Equal(TestPaths.ChineseVocabDir, ModelLocator.Resolve(relative, options: options));
        var file = Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt");
        Assert.Equal($"{file}: is a file; expected a model directory or a Hugging Face hub id",
            Assert.Throws<EmbedderException>(() => ModelLocator.Resolve(file, options: options)).Message);
        // Written as a path (./, ../, /, more than one '/'): a missing folder, never a hub id, whatever the network says.
        foreach (var path in new[] { "./models/bge", "../models/bge", "/no/such/models/bge", "models/bge/encoder" })
            Assert.Equal($"{path}: folder not found", Assert.Throws<EmbedderException>(() => ModelLocator.Resolve(path, options: options)).Message);
        Assert.Equal("bad name!: no such model directory, and not a Hugging Face hub id (org/name[@revision])",
            Assert.Throws<EmbedderException>(() => ModelLocator.Resolve("bad name!", options: options)).Message);
    }

    private static string ClosedPortEndpoint()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return $"http://127.0.0.1:{port}";
    }
}

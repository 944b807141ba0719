namespace LlmEmbedder.Checkpoints.Hub;

/// <summary>
/// Overrides for how hub ids are fetched. Every property left null falls back to the environment variable
/// huggingface_hub reads, so a cache shared with Python tools stays shared.
/// </summary>
public sealed record HubOptions
{
    /// <summary>Hub or mirror base URL; else HF_ENDPOINT, else https://huggingface.co.</summary>
    public string? Endpoint { get; init; }

    /// <summary>The hub cache folder (the one holding models--org--name); else HF_HUB_CACHE, else $HF_HOME/hub.</summary>
    public string? CacheDir { get; init; }

    /// <summary>Bearer token; else HF_TOKEN, HUGGING_FACE_HUB_TOKEN, then the file huggingface-cli login writes.</summary>
    public string? Token { get; init; }

    /// <summary>Never touch the network, only the cache; else HF_HUB_OFFLINE.</summary>
    public bool? Offline { get; init; }

    /// <summary>Limit for the file listing and per-file metadata requests; else HF_HUB_ETAG_TIMEOUT seconds, else 10 s.</summary>
    public TimeSpan? MetadataTimeout { get; init; }

    /// <summary>Longest silence while a file streams in; else HF_HUB_DOWNLOAD_TIMEOUT seconds, else 10 s.</summary>
    public TimeSpan? DownloadTimeout { get; init; }

    /// <summary>Behave as on a file system without symlinks, so tests can cover that path on Linux.</summary>
    internal bool SymlinksUnavailable { get; init; }
}

/// <summary>HubOptions with every gap filled from the environment.</summary>
internal sealed record HubSettings(
    string Endpoint,
    string CacheDir,
    string? Token,
    bool Offline,
    TimeSpan MetadataTimeout,
    TimeSpan DownloadTimeout,
    bool SymlinksUnavailable)
{
    public const string DefaultEndpoint = "https://huggingface.co";
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    public static HubSettings From(HubOptions? options, Func<string, string?> environment)
    {
        options ??= new HubOptions();
        string? Variable(string name) => environment(name) is { Length: > 0 } value ? value : null;

        var endpoint = (options.Endpoint ?? Variable("HF_ENDPOINT") ?? DefaultEndpoint).TrimEnd('/');
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var endpointUri) || (endpointUri.Scheme != "http" && endpointUri.Scheme != "https"))
            throw new EmbedderException($"HF_ENDPOINT '{endpoint}' is not an http(s) URL");

        var hfHome = ExpandHome(Variable("HF_HOME"))
            ?? Path.Combine(ExpandHome(Variable("XDG_CACHE_HOME")) ?? Path.Combine(UserHome(), ".cache"), "huggingface");
        var cacheDir = options.CacheDir ?? ExpandHome(Variable("HF_HUB_CACHE")) ?? ExpandHome(Variable("HUGGINGFACE_HUB_CACHE"))
            ?? Path.Combine(hfHome, "hub");

        var token = options.Token ?? Variable("HF_TOKEN") ?? Variable("HUGGING_FACE_HUB_TOKEN")
            ?? ReadTokenFile(ExpandHome(Variable("HF_TOKEN_PATH")) ?? Path.Combine(hfHome, "token"));
        token = string.IsNullOrWhiteSpace(token) ? null : token.Trim();

        var offline = options.Offline ?? (IsTrue(Variable("HF_HUB_OFFLINE")) || IsTrue(Variable("TRANSFORMERS_OFFLINE")));

        return new HubSettings(
            endpoint,
            Path.GetFullPath(cacheDir),
            token,
            offline,
            options.MetadataTimeout ?? Seconds(Variable("HF_HUB_ETAG_TIMEOUT"), "HF_HUB_ETAG_TIMEOUT") ?? DefaultTimeout,
            options.DownloadTimeout ?? Seconds(Variable("HF_HUB_DOWNLOAD_TIMEOUT"), "HF_HUB_DOWNLOAD_TIMEOUT") ?? DefaultTimeout,
            options.SymlinksUnavailable);
    }

    // The values huggingface_hub's own parser accepts as true.
    private static bool IsTrue(string? value) =>
        value is not null && value.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";

    private static TimeSpan? Seconds(string? value, string variable)
    {
        if (value is null) return null;
        if (!double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var seconds) || seconds <= 0)
            throw new EmbedderException($"{variable} '{value}' is not a positive number of seconds");
        return TimeSpan.FromSeconds(seconds);
    }

    private static string? ReadTokenFile(string path) => File.Exists(path) ? File.ReadAllText(path) : null;

    private static string UserHome() => Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    private static string? ExpandHome(string? path) =>
        path is not null && (path == "~" || path.StartsWith("~/", StringComparison.Ordinal)) ? UserHome() + path[1..] : path;
}

using LlmEmbedder.Checkpoints.Hub;

namespace LlmEmbedder.Tests.Checkpoints.Hub;

/// <summary>How HubOptions and the environment combine, against the variables and defaults huggingface_hub documents.</summary>
public sealed class HubSettingsTests
{
    private static HubSettings FromEnvironment(Dictionary<string, string> variables, HubOptions? options = null) =>
        HubSettings.From(options, name => variables.GetValueOrDefault(name));

    [Fact]
    public void DefaultsAreHuggingFaceCoAndTheCacheUnderTheHome()
    {
        var settings = FromEnvironment(new() { ["HF_HOME"] = "/tmp/no-such-hf-home" });

        Assert.Equal("https://huggingface.co", settings.Endpoint);
        Assert.Equal("/tmp/no-such-hf-home/hub", settings.CacheDir);
        Assert.Null(settings.Token);
        Assert.False(settings.Offline);
        Assert.Equal(TimeSpan.FromSeconds(10), settings.MetadataTimeout);
        Assert.Equal(TimeSpan.FromSeconds(10), settings.DownloadTimeout);
    }

    [Fact]
    public void WithoutHfHomeTheCacheIsUnderXdgCacheHomeOrTheUsersCacheFolder()
    {
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        Assert.Equal(Path.Combine(home, ".cache", "huggingface", "hub"), FromEnvironment(new()).CacheDir);
        Assert.Equal("/xdg/huggingface/hub", FromEnvironment(new() { ["XDG_CACHE_HOME"] = "/xdg" }).CacheDir);
        Assert.Equal(Path.Combine(home, "hf", "hub"), FromEnvironment(new() { ["HF_HOME"] = "~/hf" }).CacheDir);
    }

    [Fact]
    public void EnvironmentVariablesAreHonoured()
    {
        var settings = FromEnvironment(new()
        {
            ["HF_ENDPOINT"] = "https://hf-mirror.com/",
            ["HF_HOME"] = "/tmp/hf-home",
            ["HF_HUB_CACHE"] = "/tmp/hub-cache",
            ["HF_TOKEN"] = " hf_abc\n",
            ["HF_HUB_OFFLINE"] = "1",
            ["HF_HUB_ETAG_TIMEOUT"] = "2.5",
            ["HF_HUB_DOWNLOAD_TIMEOUT"] = "60",
        });

        Assert.Equal("https://hf-mirror.com", settings.Endpoint);
        Assert.Equal("/tmp/hub-cache", settings.CacheDir);
        Assert.Equal("hf_abc", settings.Token);
        Assert.True(settings.Offline);
        Assert.Equal(TimeSpan.FromSeconds(2.5), settings.MetadataTimeout);
        Assert.Equal(TimeSpan.FromSeconds(60), settings.DownloadTimeout);
    }

    [Theory]
    [InlineData("1", true)]
    [InlineData("true", true)]
    [InlineData("YES", true)]
    [InlineData("on", true)]
    [InlineData("0", false)]
    [InlineData("false", false)]
    [InlineData("", false)]
    public void OfflineAcceptsTheSpellingsHuggingFaceHubAccepts(string value, bool offline)
    {
        Assert.Equal(offline, FromEnvironment(new() { ["HF_HUB_OFFLINE"] = value }).Offline);
        Assert.Equal(offline, FromEnvironment(new() { ["TRANSFORMERS_OFFLINE"] = value }).Offline);
    }

    [Fact]
    public void TokenComesFromHfTokenThenTheLegacyNameThenTheLoginFile()
    {
        var home = TestPaths.NewTempDir("hf-home");
        try
        {
            File.WriteAllText(Path.Combine(home, "token"), "hf_from_login\n");
            Assert.Equal("hf_from_login", FromEnvironment(new() { ["HF_HOME"] = home }).Token);
            Assert.Equal("hf_legacy", FromEnvironment(new() { ["HF_HOME"] = home, ["HUGGING_FACE_HUB_TOKEN"] = "hf_legacy" }).Token);
            Assert.Equal("hf_new", FromEnvironment(new() { ["HF_HOME"] = home, ["HUGGING_FACE_HUB_TOKEN"] = "hf_legacy", ["HF_TOKEN"] = "hf_new" }).Token);
            Assert.Equal("hf_option", FromEnvironment(new() { ["HF_HOME"] = home, ["HF_TOKEN"] = "hf_new" }, new HubOptions { Token = "hf_option" }).Token);
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public void OptionsOverrideTheEnvironment()
    {
        var settings = FromEnvironment(
            new() { ["HF_ENDPOINT"] = "https://hf-mirror.com", ["HF_HUB_CACHE"] = "/tmp/env-cache", ["HF_HUB_OFFLINE"] = "1" },
            new HubOptions { Endpoint = "http://127.0.0.1:9", CacheDir = "/tmp/option-cache", Offline = false });

        Assert.Equal("http://127.0.0.1:9", settings.Endpoint);
        Assert.Equal("/tmp/option-cache", settings.CacheDir);
        Assert.False(settings.Offline);
    }

    [Theory]
    [InlineData("HF_ENDPOINT", "hf-mirror.com", "HF_ENDPOINT 'hf-mirror.com' is not an http(s) URL")]
    [InlineData("HF_HUB_ETAG_TIMEOUT", "soon", "HF_HUB_ETAG_TIMEOUT 'soon' is not a positive number of seconds")]
    public void BadValuesAreNamed(string variable, string value, string message)
    {
        Assert.Equal(message, Assert.Throws<EmbedderException>(() => FromEnvironment(new() { [variable] = value })).Message);
    }
}

/// <summary>Which strings are hub ids, by the rules of huggingface_hub's validate_repo_id.</summary>
public sealed class HubModelIdTests
{
    [Theory]
    [InlineData("BAAI/bge-small-zh-v1.5", "BAAI/bge-small-zh-v1.5", "main")]
    [InlineData("bert-base-chinese", "bert-base-chinese", "main")]
    [InlineData("BAAI/llm-embedder@v1.0", "BAAI/llm-embedder", "v1.0")]
    [InlineData("org/name@refs/pr/12", "org/name", "refs/pr/12")]
    [InlineData("org/name_2@0123456789abcdef0123456789abcdef01234567", "org/name_2", "0123456789abcdef0123456789abcdef01234567")]
    public void ParsesRepoAndRevision(string text, string repoId, string revision)
    {
        Assert.True(HubModelId.TryParse(text, out var id));
        Assert.Equal(new HubModelId(repoId, revision), id);
    }

    [Theory]
    [InlineData("./models/bge")]
    [InlineData("/abs/path")]
    [InlineData("a/b/c")]
    [InlineData("org--x/name")]
    [InlineData("org/na..me")]
    [InlineData("org/name.git")]
    [InlineData("-org/name")]
    [InlineData("org/name-")]
    [InlineData("org/name@")]
    [InlineData("org/name@../../etc")]
    [InlineData("org/name@a b")]
    [InlineData("org name")]
    [InlineData("")]
    public void RejectsWhatIsNoHubId(string text) => Assert.False(HubModelId.TryParse(text, out _));

    [Fact]
    public void NamesOfNinetySixCharactersAreTheLongestAccepted()
    {
        Assert.True(HubModelId.TryParse("org/" + new string('a', 96), out _));
        Assert.False(HubModelId.TryParse("org/" + new string('a', 97), out _));
    }
}

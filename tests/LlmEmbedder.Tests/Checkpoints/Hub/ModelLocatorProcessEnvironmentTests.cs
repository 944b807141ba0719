using LlmEmbedder.Checkpoints.Hub;

namespace LlmEmbedder.Tests.Checkpoints.Hub;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessEnvironmentCollection
{
    /// <summary>Tests that set process-wide environment variables; they run alone.</summary>
    public const string Name = "process environment";
}

/// <summary>ModelLocator called with no options takes HF_ENDPOINT, HF_HOME, HF_TOKEN and HF_HUB_OFFLINE from the real environment.</summary>
[Collection(ProcessEnvironmentCollection.Name)]
public sealed class ModelLocatorProcessEnvironmentTests
{
    private static readonly string[] Variables =
        ["HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"];

    [Fact]
    public void HfVariablesOfTheProcessAreHonoured()
    {
        var saved = Variables.ToDictionary(name => name, Environment.GetEnvironmentVariable);
        var home = TestPaths.NewTempDir("hf-home");
        using var hub = new FakeHub();
        try
        {
            foreach (var name in Variables) Environment.SetEnvironmentVariable(name, null);
            var repo = HubRepos.AddBge(hub, requiredToken: "hf_env_token");
            Environment.SetEnvironmentVariable("HF_ENDPOINT", hub.Endpoint);
            Environment.SetEnvironmentVariable("HF_HOME", home);
            Environment.SetEnvironmentVariable("HF_TOKEN", "hf_env_token");

            var snapshot = ModelLocator.Resolve(HubRepos.BgeId);

            Assert.Equal(Path.Combine(home, "hub", "models--BAAI--bge-small-zh-v1.5", "snapshots", repo.Commit), snapshot);
            Assert.Equal(repo.Files["model.safetensors"], File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
            Assert.All(hub.TakeRequests().Where(r => r.Server == "hub"), r => Assert.Equal("Bearer hf_env_token", r.Header("Authorization")));

            Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
            hub.Dispose();
            Assert.Equal(snapshot, ModelLocator.Resolve(HubRepos.BgeId));
        }
        finally
        {
            foreach (var (name, value) in saved) Environment.SetEnvironmentVariable(name, value);
            Directory.Delete(home, recursive: true);
        }
    }
}

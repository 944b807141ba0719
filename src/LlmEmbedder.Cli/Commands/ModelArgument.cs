using LlmEmbedder.Checkpoints.Hub;

namespace LlmEmbedder.Cli.Commands;

/// <summary>--model / --query_encoder: a local folder, or a hub id downloaded into the Hugging Face cache.</summary>
internal static class ModelArgument
{
    public const string Description =
        "Model: an encoder folder (ours, Hugging Face or sentence-transformers), a training output_dir or checkpoint-N folder, or a hub id";

    /// <param name="quiet">No download progress and no warnings (ranks other than 0 under mpirun).</param>
    public static string Resolve(string modelOrHubId, bool quiet = false)
    {
        var progress = quiet ? null : new Progress<DownloadProgress>(p =>
            Console.Error.Write($"\rdownloading {p.File}: {p.BytesDone / 1e6:F1}/{(p.BytesTotal is { } total ? $"{total / 1e6:F1}" : "?")} MB   "));
        return ModelLocator.Resolve(modelOrHubId, progress, warn: quiet ? null : message => Console.Error.WriteLine($"llm-embedder: warning: {message}"));
    }
}

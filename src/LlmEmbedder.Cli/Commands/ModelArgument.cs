using LlmEmbedder.Checkpoints.Hub;

namespace LlmEmbedder.Cli.Commands;

/// <summary>--model / --query_encoder: a local folder, or a hub id downloaded into the Hugging Face cache.</summary>
internal static class ModelArgument
{
    public static string Resolve(string modelOrHubId)
    {
        var progress = new Progress<DownloadProgress>(p =>
            Console.Error.Write($"\rdownloading {p.File}: {p.BytesDone / 1e6:F1}/{(p.BytesTotal is { } total ? $"{total / 1e6:F1}" : "?")} MB   "));
        var dir = ModelLocator.Resolve(modelOrHubId, progress, warn: message => Console.Error.WriteLine($"llm-embedder: warning: {message}"));
        return dir;
    }
}

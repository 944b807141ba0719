namespace LlmEmbedder.Checkpoints.Hub;

/// <summary>How far one file's download is; BytesTotal is null when the server did not say.</summary>
public sealed record DownloadProgress(string RepoId, string File, long BytesDone, long? BytesTotal);

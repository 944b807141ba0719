using System.Text.RegularExpressions;

namespace LlmEmbedder.Checkpoints.Hub;

/// <summary>A model on the hub: "org/name" or a legacy "name", at a branch, tag or commit ("org/name@v1.0").</summary>
public sealed partial record HubModelId(string RepoId, string Revision)
{
    public const string DefaultRevision = "main";

    /// <summary>True when Revision pins a full commit, so no refs/ entry is written for it.</summary>
    public bool RevisionIsCommit => IsCommitHash(Revision);

    public override string ToString() => Revision == DefaultRevision ? RepoId : $"{RepoId}@{Revision}";

    /// <summary>
    /// Accepts what huggingface_hub accepts as a repo id (word characters, '-', '.', at most one '/', no "--" or
    /// "..", not ending in ".git"), optionally followed by "@revision".
    /// </summary>
    public static bool TryParse(string text, out HubModelId id)
    {
        id = null!;
        var at = text.IndexOf('@');
        var repoId = at < 0 ? text : text[..at];
        var revision = at < 0 ? DefaultRevision : text[(at + 1)..];
        if (!RepoIdPattern().IsMatch(repoId) || repoId.Contains("--") || repoId.Contains("..") || repoId.EndsWith(".git", StringComparison.Ordinal))
            return false;
        if (!IsSafeRevision(revision))
            return false;
        id = new HubModelId(repoId, revision);
        return true;
    }

    public static bool IsCommitHash(string revision) => CommitPattern().IsMatch(revision);

    // A revision names a file under refs/ (refs/pr/1 included), so it must stay inside that folder.
    private static bool IsSafeRevision(string revision) =>
        revision.Length > 0 && !revision.Any(c => char.IsWhiteSpace(c) || c == '\\' || char.IsControl(c))
        && revision.Split('/').All(segment => segment.Length > 0 && segment != "." && segment != "..");

    [GeneratedRegex(@"^([A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?/)?[A-Za-z0-9_]([A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$")]
    private static partial Regex RepoIdPattern();

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitPattern();
}

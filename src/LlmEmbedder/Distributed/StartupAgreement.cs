namespace LlmEmbedder.Distributed;

/// <summary>
/// The startup half of <see cref="IProcessGroup.AgreeOnStartup"/>'s contract, kept in one place: a rank whose startup
/// throws before it agreed still takes part in the agreement, so the other ranks stop instead of waiting for it.
/// </summary>
public static class StartupAgreement
{
    /// <summary>
    /// Runs <paramref name="startup"/>, which calls <see cref="IProcessGroup.AgreeOnStartup"/>(failedHere: false) once it
    /// succeeded. When it throws before that, this rank agrees that its startup failed: the lowest failing rank rethrows
    /// its error (it reports it), the others throw <see cref="StartupFailedElsewhereException"/>. Throws after the
    /// agreement pass through unchanged.
    /// </summary>
    public static T RunStartup<T>(this IProcessGroup group, Func<T> startup)
    {
        try
        {
            return startup();
        }
        catch (Exception) when (!group.StartupAgreed)
        {
            if (group.AgreeOnStartup(failedHere: true) is { } lowest && lowest != group.Rank)
                throw new StartupFailedElsewhereException(lowest);
            throw;
        }
    }
}

using LlmEmbedder.Training;

namespace LlmEmbedder.Tests.Training;

/// <summary>A training observer that shows nothing: for tests that only look at the trainer's result.</summary>
internal sealed class SilentObserver : ITrainingObserver
{
    public void Message(string text) { }

    public void Step(TrainingStepLog log, bool logged) { }

    public void Evaluated(int step, string label, IReadOnlyDictionary<string, double> metrics) { }
}

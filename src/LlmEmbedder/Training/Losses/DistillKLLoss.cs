using TorchSharp;
using static TorchSharp.torch;

namespace LlmEmbedder.Training.Losses;

/// <summary>
/// Knowledge distillation from teacher scores (docs/REFERENCE.md §4, the reference's non-stable distillation):
/// KL(softmax(t / teacher_temperature) ‖ softmax(s / student_temperature)) where s are each query's
/// scores against its own group of G keys only (no in-batch negatives), summed over the group and
/// divided by B (PyTorch's <c>kl_div(..., reduction="batchmean")</c>). Needs q [B, D], keys [B·G, D] and
/// teacher scores [B, G] (positive first, as in the training rows' <c>teacher_scores</c>).
/// </summary>
public sealed class DistillKLLoss
{
    private readonly EmbeddingSimilarity similarity;

    public DistillKLLoss(EmbeddingSimilarity similarity, double teacherTemperature, double studentTemperature)
    {
        if (!(teacherTemperature > 0))
            throw new EmbedderException($"teacher_temperature must be > 0 (got {teacherTemperature})");
        if (!(studentTemperature > 0))
            throw new EmbedderException($"student_temperature must be > 0 (got {studentTemperature})");
        this.similarity = similarity;
        TeacherTemperature = teacherTemperature;
        StudentTemperature = studentTemperature;
    }

    public double TeacherTemperature { get; }

    public double StudentTemperature { get; }

    public Tensor Compute(Tensor queries, Tensor keys, Tensor teacherScores)
    {
        var groupSize = EmbeddingSimilarity.GroupSize(queries, keys);
        EmbeddingSimilarity.CheckTeacherScores(teacherScores, queries.shape[0], groupSize);
        using var scope = NewDisposeScope();
        var student = similarity.OwnGroupScores(queries, keys).div(StudentTemperature);
        var teacher = teacherScores.to(student.dtype, student.device).detach().div(TeacherTemperature);
        var studentLogProbs = nn.functional.log_softmax(student, dim: 1);
        // log p from log_softmax rather than log(softmax): a teacher probability that underflows to 0
        // then contributes 0·finite = 0 instead of 0·(−∞) = NaN.
        var teacherLogProbs = nn.functional.log_softmax(teacher, dim: 1);
        var teacherProbs = teacherLogProbs.exp();
        var klPerQuery = teacherProbs.mul(teacherLogProbs.sub(studentLogProbs)).sum(dim: 1);
        return klPerQuery.sum().div(queries.shape[0]).MoveToOuterDisposeScope();
    }
}

namespace LlmEmbedder.Data;

/// <summary>Why a row produced no training sample.</summary>
public enum GroupingOutcome
{
    Grouped,
    /// <summary>The highest teacher score is below teacher_scores_min.</summary>
    BelowTeacherScoresMin,
    /// <summary>max − min of the teacher scores is below teacher_scores_margin.</summary>
    BelowTeacherScoresMargin,
    /// <summary>No negative is left after picking the positive.</summary>
    NoNegatives,
}

/// <summary>
/// Turns a row into a fixed-size group once, at preprocessing (docs/REFERENCE.md §2, run_dense.py's train process
/// function): teacher-score filters, one positive, G−1 negatives (repeated when short), instructions,
/// and the stable_distill order. Random choices come from the caller's generator so each row's result
/// depends only on its own stream.
/// </summary>
public static class SampleGrouper
{
    public static (GroupingOutcome Outcome, TrainingGroup? Group) Group(
        TrainingRow row, string file, int groupSize, TaskTrainingConfig config, Instruction? instruction,
        DeterministicRandom random, int datasetIndex)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(groupSize, 1);
        var scores = row.TeacherScores;
        if (scores is not null)
        {
            var max = scores.Max();
            if (config.TeacherScoresMin is { } minimum && max < minimum)
                return (GroupingOutcome.BelowTeacherScoresMin, null);
            if (config.TeacherScoresMargin is { } margin && max - scores.Min() < margin)
                return (GroupingOutcome.BelowTeacherScoresMargin, null);
        }

        var positiveCount = row.Pos.Count;
        var negatives = new List<string>(row.Neg);
        List<double>? negativeScores = scores is null ? null : [.. scores.Skip(positiveCount)];
        string positive;
        double positiveScore = 0;
        // Teacher-based choices need scores; without them the reference quietly falls back to "first".
        var selection = scores is null && config.SelectPositive is PositiveSelection.Teacher or PositiveSelection.TeacherPos
            ? PositiveSelection.First
            : config.SelectPositive;
        if (selection == PositiveSelection.Teacher)
        {
            var best = ArgMax(scores!, scores!.Count);
            positiveScore = scores[best];
            if (best < positiveCount)
                positive = row.Pos[best];
            else
            {
                // A negative the teacher likes best becomes the positive and leaves the negatives.
                positive = negatives[best - positiveCount];
                negatives.RemoveAt(best - positiveCount);
                negativeScores!.RemoveAt(best - positiveCount);
            }
        }
        else
        {
            if (positiveCount == 0)
                throw EmbedderException.AtLine(file, row.Line, row.FromHistory
                    ? $"select_positive {SelectionNames.Name(config.SelectPositive)} needs a positive, but chat rows (\"history\") have none; use select_positive teacher with teacher_scores"
                    : $"select_positive {SelectionNames.Name(config.SelectPositive)} needs a positive, but \"pos\" is empty");
            var chosen = selection switch
            {
                PositiveSelection.Random => random.NextInt(positiveCount),
                PositiveSelection.TeacherPos => ArgMax(scores!, positiveCount),
                _ => 0,
            };
            positive = row.Pos[chosen];
            if (scores is not null) positiveScore = scores[chosen];
        }

        if (negatives.Count == 0)
            return (GroupingOutcome.NoNegatives, null);
        var needed = groupSize - 1;
        if (negatives.Count < needed)
        {
            // Whole-list repetition keeps every negative equally represented.
            var copies = (needed + negatives.Count - 1) / negatives.Count;
            negatives = [.. Enumerable.Repeat(negatives, copies).SelectMany(n => n)];
            if (negativeScores is not null)
                negativeScores = [.. Enumerable.Repeat(negativeScores, copies).SelectMany(s => s)];
        }

        var picked = ChooseNegatives(config.SelectNegative, negatives.Count, needed, negativeScores, random);
        var keys = new string[groupSize];
        var groupScores = scores is null ? null : new double[groupSize];
        keys[0] = positive;
        if (groupScores is not null) groupScores[0] = positiveScore;
        for (var i = 0; i < needed; i++)
        {
            keys[i + 1] = negatives[picked[i]];
            if (groupScores is not null) groupScores[i + 1] = negativeScores![picked[i]];
        }

        // stable_distill's ranking loss expects the negatives in descending teacher order; without
        // scores there is nothing to rank by (the reference would crash here), so the order stays.
        if (config.StableDistill && groupScores is not null)
        {
            var order = StableOrder(groupScores.AsSpan(1).ToArray(), descending: true);
            var sortedKeys = order.Select(i => keys[i + 1]).ToArray();
            var sortedScores = order.Select(i => groupScores[i + 1]).ToArray();
            sortedKeys.CopyTo(keys, 1);
            sortedScores.CopyTo(groupScores, 1);
        }

        var query = row.Query;
        if (instruction is not null)
        {
            query = instruction.ApplyToQuery(query);
            for (var i = 0; i < keys.Length; i++) keys[i] = instruction.ApplyToKey(keys[i]);
        }
        var floatScores = groupScores?.Select(s => (float)s).ToArray();
        return (GroupingOutcome.Grouped, new TrainingGroup(query, keys, floatScores, datasetIndex));
    }

    private static int[] ChooseNegatives(NegativeSelection selection, int available, int needed, List<double>? scores, DeterministicRandom random)
    {
        if (scores is null && selection is NegativeSelection.TeacherLowest or NegativeSelection.TeacherHighest)
            selection = NegativeSelection.Random;
        return selection switch
        {
            NegativeSelection.First => [.. Enumerable.Range(0, needed)],
            NegativeSelection.TeacherLowest => StableOrder(scores!, descending: false)[..needed],
            NegativeSelection.TeacherHighest => StableOrder(scores!, descending: true)[..needed],
            _ => random.SampleWithoutReplacement(available, needed),
        };
    }

    /// <summary>Indices ordered by score; ties keep their original order (Python's stable sort, also with reverse).</summary>
    private static int[] StableOrder(IReadOnlyList<double> scores, bool descending)
    {
        var indices = Enumerable.Range(0, scores.Count);
        return descending
            ? [.. indices.OrderByDescending(i => scores[i])]
            : [.. indices.OrderBy(i => scores[i])];
    }

    /// <summary>First index of the maximum among the first <paramref name="count"/> scores.</summary>
    private static int ArgMax(IReadOnlyList<double> scores, int count)
    {
        var best = 0;
        for (var i = 1; i < count; i++)
            if (scores[i] > scores[best]) best = i;
        return best;
    }
}

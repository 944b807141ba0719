using LlmEmbedder.Data;

namespace LlmEmbedder.Tests.Data;

/// <summary>
/// Hand-computed groups for the row below (G = 4, so 3 negatives). Teacher scores, positives first:
/// P0 .5, P1 .7 | N0 .2, N1 .9, N2 .1, N3 .4.
/// </summary>
public sealed class SampleGrouperTests
{
    private static readonly TrainingRow Row = new("q", ["P0", "P1"], ["N0", "N1", "N2", "N3"], [0.5, 0.7, 0.2, 0.9, 0.1, 0.4], "qa", false, 1);

    private static TrainingGroup Group(TrainingRow row, TaskTrainingConfig config, int groupSize = 4, Instruction? instruction = null, long stream = 0)
    {
        var (outcome, group) = SampleGrouper.Group(row, "f.jsonl", groupSize, config, instruction, DeterministicRandom.ForStream(42, stream), datasetIndex: 3);
        Assert.Equal(GroupingOutcome.Grouped, outcome);
        Assert.Equal(3, group!.DatasetIndex);
        return group;
    }

    private static void AssertGroup(TrainingGroup group, string[] keys, float[]? scores)
    {
        Assert.Equal(keys, group.Keys);
        Assert.Equal(scores, group.TeacherScores);
    }

    [Fact]
    public void FirstPositiveFirstNegatives() =>
        AssertGroup(Group(Row, new(PositiveSelection.First, NegativeSelection.First)), ["P0", "N0", "N1", "N2"], [0.5f, 0.2f, 0.9f, 0.1f]);

    [Fact]
    public void TeacherPosTakesTheBestPositive() =>
        AssertGroup(Group(Row, new(PositiveSelection.TeacherPos, NegativeSelection.First)), ["P1", "N0", "N1", "N2"], [0.7f, 0.2f, 0.9f, 0.1f]);

    [Fact]
    public void TeacherPromotesTheBestNegativeAndRemovesItFromTheNegatives() =>
        AssertGroup(Group(Row, new(PositiveSelection.Teacher, NegativeSelection.First)), ["N1", "N0", "N2", "N3"], [0.9f, 0.2f, 0.1f, 0.4f]);

    [Fact]
    public void TeacherMinusTakesTheLowestScoredNegatives() =>
        AssertGroup(Group(Row, new(PositiveSelection.First, NegativeSelection.TeacherLowest)), ["P0", "N2", "N0", "N3"], [0.5f, 0.1f, 0.2f, 0.4f]);

    [Fact]
    public void TeacherPlusTakesTheHighestScoredNegatives() =>
        AssertGroup(Group(Row, new(PositiveSelection.First, NegativeSelection.TeacherHighest)), ["P0", "N1", "N3", "N0"], [0.5f, 0.9f, 0.4f, 0.2f]);

    [Fact]
    public void TeacherPlusKeepsFileOrderAmongTies()
    {
        var row = new TrainingRow("q", ["P"], ["A", "B", "C"], [1, 0.3, 0.1, 0.3], "qa", false, 1);
        AssertGroup(Group(row, new(SelectNegative: NegativeSelection.TeacherHighest), groupSize: 3), ["P", "A", "C"], [1f, 0.3f, 0.3f]);
    }

    [Fact]
    public void StableDistillSortsNegativesByTeacherScoreDescendingAfterSelection() =>
        AssertGroup(Group(Row, new(PositiveSelection.First, NegativeSelection.First, StableDistill: true)), ["P0", "N1", "N0", "N2"], [0.5f, 0.9f, 0.2f, 0.1f]);

    [Fact]
    public void StableDistillKeepsThePositiveFirstEvenWhenANegativeScoresHigher()
    {
        var group = Group(Row, new(PositiveSelection.First, NegativeSelection.TeacherHighest, StableDistill: true), groupSize: 5);
        AssertGroup(group, ["P0", "N1", "N3", "N0", "N2"], [0.5f, 0.9f, 0.4f, 0.2f, 0.1f]);
    }

    [Fact]
    public void ShortNegativeListsRepeatWithTheirScores()
    {
        // 2 negatives, G−1 = 5: the list is repeated ceil(5/2) = 3 times → N0 N1 N0 N1 N0 N1 (scores alongside).
        var row = new TrainingRow("q", ["P"], ["N0", "N1"], [1, 0.2, 0.9], "qa", false, 1);
        AssertGroup(Group(row, new(SelectNegative: NegativeSelection.First), groupSize: 6), ["P", "N0", "N1", "N0", "N1", "N0"], [1f, 0.2f, 0.9f, 0.2f, 0.9f, 0.2f]);
        AssertGroup(Group(row, new(SelectNegative: NegativeSelection.TeacherHighest), groupSize: 6), ["P", "N1", "N1", "N1", "N0", "N0"], [1f, 0.9f, 0.9f, 0.9f, 0.2f, 0.2f]);
        // Random picks 5 of the 6 repeated slots without replacement: each negative at most 3 times, so at least twice.
        for (var stream = 0; stream < 20; stream++)
        {
            var keys = Group(row, new(), groupSize: 6, stream: stream).Keys[1..];
            Assert.InRange(keys.Count(k => k == "N0"), 2, 3);
            Assert.Equal(5, keys.Count(k => k == "N0") + keys.Count(k => k == "N1"));
        }
    }

    [Fact]
    public void RandomNegativesAreDistinctAndUniformOverStreams()
    {
        var counts = new Dictionary<string, int>();
        const int trials = 2000;
        for (var stream = 0; stream < trials; stream++)
        {
            var group = Group(Row, new(SelectNegative: NegativeSelection.Random), stream: stream);
            Assert.Equal("P0", group.Keys[0]);
            var negatives = group.Keys[1..];
            Assert.Equal(3, negatives.Distinct().Count());
            // Scores travel with their keys.
            for (var i = 1; i < 4; i++)
                Assert.Equal((float)Row.TeacherScores![2 + Row.Neg.ToList().IndexOf(group.Keys[i])], group.TeacherScores![i]);
            foreach (var key in negatives) counts[key] = counts.GetValueOrDefault(key) + 1;
        }
        // Each of 4 negatives is among the 3 picked with probability 3/4; tolerance 4 standard deviations.
        Assert.Equal(4, counts.Count);
        Assert.All(counts.Values, c => Assert.InRange(c / (double)trials, 0.75 - 4 * 0.0097, 0.75 + 4 * 0.0097));
    }

    [Fact]
    public void RandomPositiveIsUniformAndDeterministicPerStream()
    {
        var firstCount = 0;
        const int trials = 2000;
        for (var stream = 0; stream < trials; stream++)
        {
            var group = Group(Row, new(PositiveSelection.Random, NegativeSelection.First), stream: stream);
            Assert.Equal(group.Keys, Group(Row, new(PositiveSelection.Random, NegativeSelection.First), stream: stream).Keys);
            Assert.Contains(group.Keys[0], Row.Pos);
            Assert.Equal(group.Keys[0] == "P0" ? 0.5f : 0.7f, group.TeacherScores![0]);
            // The other positive is discarded, never used as a negative.
            Assert.DoesNotContain(group.Keys[1..], k => k.StartsWith('P'));
            if (group.Keys[0] == "P0") firstCount++;
        }
        Assert.InRange(firstCount / (double)trials, 0.5 - 4 * 0.0112, 0.5 + 4 * 0.0112);
    }

    [Theory]
    [InlineData(0.9, null, GroupingOutcome.Grouped)]   // max .9 is not below .9
    [InlineData(0.95, null, GroupingOutcome.BelowTeacherScoresMin)]
    [InlineData(null, 0.75, GroupingOutcome.Grouped)]  // max − min = .9 − .1 = .8
    [InlineData(null, 0.85, GroupingOutcome.BelowTeacherScoresMargin)]
    public void TeacherScoreFilters(double? minimum, double? margin, GroupingOutcome expected)
    {
        var config = new TaskTrainingConfig(TeacherScoresMin: minimum, TeacherScoresMargin: margin);
        var (outcome, group) = SampleGrouper.Group(Row, "f.jsonl", 4, config, null, DeterministicRandom.ForStream(1), 0);
        Assert.Equal(expected, outcome);
        Assert.Equal(expected == GroupingOutcome.Grouped, group is not null);
    }

    [Fact]
    public void FiltersIgnoreRowsWithoutTeacherScores()
    {
        var row = Row with { TeacherScores = null };
        var (outcome, group) = SampleGrouper.Group(row, "f.jsonl", 4, new(TeacherScoresMin: 100, TeacherScoresMargin: 100), null, DeterministicRandom.ForStream(1), 0);
        Assert.Equal(GroupingOutcome.Grouped, outcome);
        Assert.Null(group!.TeacherScores);
    }

    [Fact]
    public void SamplesWithoutNegativesAreDropped()
    {
        var noNegatives = new TrainingRow("q", ["P"], [], null, "qa", false, 1);
        Assert.Equal(GroupingOutcome.NoNegatives, SampleGrouper.Group(noNegatives, "f", 4, new(), null, DeterministicRandom.ForStream(1), 0).Outcome);
        // The teacher promotes the only negative, which leaves none.
        var promoted = new TrainingRow("q", ["P"], ["N"], [0.1, 0.9], "qa", false, 1);
        Assert.Equal(GroupingOutcome.NoNegatives, SampleGrouper.Group(promoted, "f", 4, new(PositiveSelection.Teacher), null, DeterministicRandom.ForStream(1), 0).Outcome);
    }

    [Fact]
    public void InstructionsPrefixQueryAndEveryKey()
    {
        var group = Group(Row, new(PositiveSelection.First, NegativeSelection.First), instruction: new Instruction("为这个句子生成表示以用于检索相关文章: ", "文档: "));
        Assert.Equal("为这个句子生成表示以用于检索相关文章: q", group.Query);
        Assert.Equal(["文档: P0", "文档: N0", "文档: N1", "文档: N2"], group.Keys);
    }

    [Fact]
    public void ChatHistoryRowsNeedTheTeacherToPickThePositive()
    {
        var chat = new TrainingRow("你好", [], ["H0", "H1", "H2"], [0.1, 0.8, 0.3], "chat", true, 9);
        AssertGroup(Group(chat, new(PositiveSelection.Teacher, NegativeSelection.First), groupSize: 3), ["H1", "H0", "H2"], [0.8f, 0.1f, 0.3f]);
        var error = Assert.Throws<EmbedderException>(() => SampleGrouper.Group(chat, "chat.jsonl", 3, new(PositiveSelection.Random), null, DeterministicRandom.ForStream(1), 0));
        Assert.Equal("chat.jsonl:9: select_positive random needs a positive, but chat rows (\"history\") have none; use select_positive teacher with teacher_scores", error.Message);
    }

    [Fact]
    public void TeacherModesWithoutScoresFallBackLikeTheReference()
    {
        var row = Row with { TeacherScores = null };
        AssertGroup(Group(row, new(PositiveSelection.Teacher, NegativeSelection.First)), ["P0", "N0", "N1", "N2"], null);
        AssertGroup(Group(row, new(PositiveSelection.TeacherPos, NegativeSelection.First)), ["P0", "N0", "N1", "N2"], null);
        // teacher+ without scores draws at random, the same draw as "random" from the same stream.
        Assert.Equal(Group(row, new(SelectNegative: NegativeSelection.Random), stream: 5).Keys,
            Group(row, new(SelectNegative: NegativeSelection.TeacherHighest), stream: 5).Keys);
        // stable_distill has nothing to sort by.
        AssertGroup(Group(row, new(PositiveSelection.First, NegativeSelection.First, StableDistill: true)), ["P0", "N0", "N1", "N2"], null);
    }

    [Fact]
    public void GroupSizeOneKeepsOnlyThePositive() =>
        AssertGroup(Group(Row, new(), groupSize: 1), ["P0"], [0.5f]);
}

import torch

from hashbench.losses.triplet import TripletRankingLoss, margin_for_bits


def test_margin_matches_reference_pairs():
    assert margin_for_bits(16) == 8 and margin_for_bits(64) == 20


def test_hand_computed_single_label_case():
    # items 0, 1: class 0; item 2: class 1. Valid triplets (anchor = lower index of the positive pair):
    # (0, 1, 2) only. |e0-e1|^2 = 1, |e0-e2|^2 = 4 -> relu(1 - 4 + m)
    e = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([[1, 0], [1, 0], [0, 1]])
    assert torch.isclose(TripletRankingLoss(5.0)(e, y), torch.tensor(2.0))
    assert TripletRankingLoss(2.0)(e, y).item() == 0.0  # zero-loss triplets count in the mean


def test_hand_computed_multi_label_mean_over_all_triplets():
    # 0 = {a}, 1 = {a, b}, 2 = {b}, 3 = {c}. Positive pairs (share >= 1): (0,1), (1,2).
    # Negatives of 0: 2, 3. Negatives of 1: 3. Triplets: (0,1,2), (0,1,3), (1,2,3).
    e = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    y = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]])
    m = 10.0
    d = lambda i, j: (e[i] - e[j]).pow(2).sum()  # noqa: E731
    expected = (torch.relu(d(0, 1) - d(0, 2) + m) + torch.relu(d(0, 1) - d(0, 3) + m)
                + torch.relu(d(1, 2) - d(1, 3) + m)) / 3
    assert torch.isclose(TripletRankingLoss(m)(e, y), expected)


def test_no_valid_triplet_gives_zero_with_gradient():
    e = torch.randn(3, 4, requires_grad=True)
    loss = TripletRankingLoss(1.0)(e, torch.tensor([[1], [1], [1]]))
    loss.backward()
    assert loss.item() == 0.0 and e.grad is not None

"""Human mask (eq. 1) and keypoint mask (eq. 2): learnable tokens that score and re-weight feature tokens.

Both layers take per-frame token features ``(B, T, N, D)`` and return the re-weighted features together with
the mask they applied, so the masks can be visualised.
"""

from typing import Literal

import torch
from einops import rearrange, reduce, repeat
from torch import nn

from vremd_layers.attention import AttentionBackend, transformer_blocks

__all__ = ["HumanMask", "KeypointMask"]


def _check_features(features: torch.Tensor, dim: int, num_frames: int | None = None) -> None:
    if features.ndim != 4 or features.shape[-1] != dim:
        raise ValueError(f"features must be (B, T, N, {dim}), got {tuple(features.shape)}")
    if num_frames is not None and features.shape[1] != num_frames:
        raise ValueError(f"features must have T={num_frames} frames, got {tuple(features.shape)}")


class HumanMask(nn.Module):
    """Human mask (eq. 1, "Human mask" in Sec. "Human-Keypoint Mask Enhanced Module").

    Per frame, a learnable human token is prepended to the N feature tokens and L_h transformer blocks run over
    that frame alone. The output is split into the human token T_h and features F_bar, and
    ``Mask_h = act(F_bar @ T_h^T / sqrt(D))``, ``F_c = F_bar * Mask_h``; eq. 1 has no activation (``act`` is the
    identity by default).

    Args:
        dim: Token width D.
        num_blocks: Number of transformer blocks L_h (0 allowed: the mask is then computed on the input).
        num_heads: Attention heads per block.
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
        drop_path: Largest stochastic-depth rate (linearly increasing over the blocks).
        backend: Attention backend, see :func:`vremd_layers.resolve_backend`.
        num_frames: None shares one human token between all frames; an int gives each frame position its own
            token (T_h in R^{T x 1 x D}) and then requires exactly that many frames.
        mask_activation: ``"none"`` for the scaled product as eq. 1 writes it (default) or ``"sigmoid"`` to bound
            the mask in (0, 1) (see docs/paper-map.md, eq. 1).

    Shapes:
        features: Float[B, T, N, D]
        returns: refined Float[B, T, N, D], mask Float[B, T, N]
    """

    def __init__(
        self,
        dim: int,
        *,
        num_blocks: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        backend: AttentionBackend = "auto",
        num_frames: int | None = None,
        mask_activation: Literal["sigmoid", "none"] = "none",
    ) -> None:
        super().__init__()
        if mask_activation not in ("sigmoid", "none"):
            raise ValueError(f"mask_activation must be 'sigmoid' or 'none', got {mask_activation!r}")
        self.dim = dim
        self.num_frames = num_frames
        self.mask_activation = mask_activation
        self.human_token = nn.Parameter(torch.zeros(num_frames or 1, 1, dim))
        self.blocks = transformer_blocks(
            dim, num_blocks, num_heads=num_heads, mlp_ratio=mlp_ratio, drop_path=drop_path, backend=backend
        )
        # Pre-norm blocks leave the residual stream unnormalised; the final norm (as in ViT) keeps the
        # token-feature products of the mask in a stable range.
        self.norm = nn.LayerNorm(dim)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.human_token, std=0.02)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score every token against the frame's human token and re-weight it.

        Shapes:
            features: Float[B, T, N, D]
            returns: refined Float[B, T, N, D], mask Float[B, T, N]
        """
        _check_features(features, self.dim, self.num_frames)
        B, T, _, D = features.shape
        human = repeat(self.human_token, "tt one d -> b (t tt) one d", b=B, t=T // self.human_token.shape[0])
        tokens = rearrange(torch.cat([human, features], dim=2), "b t n d -> (b t) n d")
        tokens = self.norm(self.blocks(tokens))
        human_out, feats = tokens[:, :1], tokens[:, 1:]
        mask = (feats @ human_out.transpose(1, 2)).squeeze(-1) * D**-0.5  # (B T, N)
        if self.mask_activation == "sigmoid":
            mask = mask.sigmoid()
        refined = feats * mask.unsqueeze(-1)
        return rearrange(refined, "(b t) n d -> b t n d", b=B), rearrange(mask, "(b t) n -> b t n", b=B)


class KeypointMask(nn.Module):
    """Keypoint mask (eq. 2, "Keypoint mask" in Sec. "Human-Keypoint Mask Enhanced Module").

    J learnable keypoint tokens per frame are appended to that frame's tokens; L_k transformer blocks run over
    all frames' tokens jointly (T * (N + J) tokens). The output is split into features F_hat (T*N x D) and
    keypoint tokens T_hat (T*J x D); ``Map = T_hat @ F_hat^T / sqrt(D)``, softmax over the T*N tokens, summed over
    the T*J keypoints, gives ``Mask_k`` (T*N values that sum to T*J); ``F_f = F_hat * Mask_k``.

    A learnable frame embedding is added to the feature tokens before the joint blocks, because attention over
    the concatenated frames is otherwise blind to which frame a token came from.

    With ``apply_mask=False`` the tokens and blocks run as before but Map and Mask_k are neither computed nor
    applied (``F_f = F_hat``): the keypoint mask is ablated while the keypoint tokens stay (Table 5 (a), (b)).

    Args:
        dim: Token width D.
        num_keypoints: Number of keypoint tokens J per frame.
        num_frames: Number of frames T (keypoint tokens and frame embeddings are per frame).
        num_blocks: Number of transformer blocks L_k (0 allowed).
        num_heads: Attention heads per block.
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
        drop_path: Largest stochastic-depth rate (linearly increasing over the blocks).
        backend: Attention backend, see :func:`vremd_layers.resolve_backend`.
        apply_mask: Compute Mask_k and multiply the features by it (eq. 2); False returns ``F_hat`` and no mask.

    Shapes:
        features: Float[B, T, N, D]
        returns: refined Float[B, T, N, D], keypoint_tokens Float[B, T, J, D], mask Float[B, T, N] (None without
        ``apply_mask``)
    """

    def __init__(
        self,
        dim: int,
        *,
        num_keypoints: int,
        num_frames: int,
        num_blocks: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        backend: AttentionBackend = "auto",
        apply_mask: bool = True,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.num_frames = num_frames
        self.num_keypoints = num_keypoints
        self.apply_mask = apply_mask
        self.keypoint_tokens = nn.Parameter(torch.zeros(num_frames, num_keypoints, dim))
        self.frame_embed = nn.Parameter(torch.zeros(num_frames, 1, dim))
        self.blocks = transformer_blocks(
            dim, num_blocks, num_heads=num_heads, mlp_ratio=mlp_ratio, drop_path=drop_path, backend=backend
        )
        self.norm = nn.LayerNorm(dim)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.keypoint_tokens, std=0.02)
        nn.init.trunc_normal_(self.frame_embed, std=0.02)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Attend jointly over all frames, score tokens against the keypoint tokens and re-weight them.

        Shapes:
            features: Float[B, T, N, D]
            returns: refined Float[B, T, N, D], keypoint_tokens Float[B, T, J, D], mask Float[B, T, N] or None
        """
        _check_features(features, self.dim, self.num_frames)
        B, T, N, D = features.shape
        J = self.num_keypoints
        keypoints = repeat(self.keypoint_tokens, "t j d -> b t j d", b=B)
        tokens = torch.cat([features + self.frame_embed, keypoints], dim=2)
        tokens = self.norm(self.blocks(rearrange(tokens, "b t nj d -> b (t nj) d")))
        tokens = rearrange(tokens, "b (t nj) d -> b t nj d", t=T)
        if not self.apply_mask:
            return tokens[:, :, :N], tokens[:, :, N:], None
        feats = rearrange(tokens[:, :, :N], "b t n d -> b (t n) d")
        kpts = rearrange(tokens[:, :, N:], "b t j d -> b (t j) d")
        confidence = (kpts @ feats.transpose(1, 2)) * D**-0.5  # Map: (B, T*J, T*N)
        mask = reduce(confidence.softmax(dim=-1), "b tj tn -> b tn", "sum")
        refined = feats * mask.unsqueeze(-1)
        return (
            rearrange(refined, "b (t n) d -> b t n d", t=T),
            rearrange(kpts, "b (t j) d -> b t j d", j=J),
            rearrange(mask, "b (t n) -> b t n", t=T),
        )

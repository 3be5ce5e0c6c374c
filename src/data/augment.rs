//! Training-time transforms of image batches, on the host, per image, from a named stream:
//! random crop with zero padding and horizontal flip as torchvision's `RandomCrop(32,
//! padding=p)` and `RandomHorizontalFlip()` in the official code (applied to the 0..255 pixels,
//! so padding is black), then per-channel normalisation, then Cutout (DeVries & Taylor 2017:
//! one square hole per image, centre uniform over the image, clipped at the border, zeros after
//! normalisation). The official code builds one Cutout mask per batch; we draw one per image,
//! as the Cutout paper does.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::spec::types::Augment;

/// Applies `augment` to one `[c, h, w]` byte image in place (`scratch` is reused memory).
pub fn transform(
    img: &mut [u8],
    shape: [usize; 3],
    augment: &[Augment],
    rng: &mut ChaCha8Rng,
    scratch: &mut Vec<u8>,
) {
    let [c, h, w] = shape;
    for a in augment {
        match *a {
            Augment::Flip => {
                if rng.random::<bool>() {
                    for plane in img.chunks_exact_mut(h * w) {
                        for row in plane.chunks_exact_mut(w) {
                            row.reverse();
                        }
                    }
                }
            }
            Augment::Crop(pad) => {
                // Offsets of the crop window in the padded image, each uniform in 0..=2·pad.
                let dy = rng.random_range(0..=2 * pad) as isize - pad as isize;
                let dx = rng.random_range(0..=2 * pad) as isize - pad as isize;
                scratch.clear();
                scratch.extend_from_slice(img);
                for ch in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            let (sy, sx) = (y as isize + dy, x as isize + dx);
                            let inside =
                                sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w;
                            img[(ch * h + y) * w + x] = if inside {
                                scratch[(ch * h + sy as usize) * w + sx as usize]
                            } else {
                                0
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Zeroes one `size`×`size` square (clipped at the border) of a normalised `[c, h, w]` image.
pub fn cutout(img: &mut [f32], shape: [usize; 3], size: usize, rng: &mut ChaCha8Rng) {
    let [c, h, w] = shape;
    let cy = rng.random_range(0..h) as isize;
    let cx = rng.random_range(0..w) as isize;
    let half = (size / 2) as isize;
    let (y0, y1) = (
        (cy - half).max(0) as usize,
        ((cy - half + size as isize).min(h as isize)).max(0) as usize,
    );
    let (x0, x1) = (
        (cx - half).max(0) as usize,
        ((cx - half + size as isize).min(w as isize)).max(0) as usize,
    );
    for ch in 0..c {
        for y in y0..y1 {
            img[(ch * h + y) * w + x0..(ch * h + y) * w + x1].fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_shifts_with_black_fill_and_flip_mirrors() {
        // A 1×3×3 image 1..9; every crop of padding 1 is a shift by (dy, dx) ∈ {−1, 0, 1}².
        let base: Vec<u8> = (1..=9).collect();
        let mut rng = crate::rng::stream(0, "augment");
        let mut scratch = Vec::new();
        for _ in 0..50 {
            let mut img = base.clone();
            transform(
                &mut img,
                [1, 3, 3],
                &[Augment::Crop(1)],
                &mut rng,
                &mut scratch,
            );
            let shifted = (-1..=1)
                .flat_map(|dy| (-1..=1).map(move |dx| (dy, dx)))
                .any(|(dy, dx): (isize, isize)| {
                    (0..3).all(|y| {
                        (0..3).all(|x| {
                            let (sy, sx) = (y as isize + dy, x as isize + dx);
                            let want = if (0..3).contains(&sy) && (0..3).contains(&sx) {
                                base[(sy * 3 + sx) as usize]
                            } else {
                                0
                            };
                            img[(y * 3 + x) as usize] == want
                        })
                    })
                });
            assert!(shifted, "{img:?} is no shifted copy");
        }
        let mut flipped = 0;
        for _ in 0..200 {
            let mut img = base.clone();
            transform(
                &mut img,
                [1, 3, 3],
                &[Augment::Flip],
                &mut rng,
                &mut scratch,
            );
            if img != base {
                assert_eq!(img, vec![3, 2, 1, 6, 5, 4, 9, 8, 7]);
                flipped += 1;
            }
        }
        assert!((70..130).contains(&flipped), "flipped {flipped} of 200");
    }

    #[test]
    fn cutout_zeroes_one_clipped_square() {
        let mut rng = crate::rng::stream(1, "cutout");
        for _ in 0..100 {
            let mut img = vec![1.0f32; 2 * 8 * 8];
            cutout(&mut img, [2, 8, 8], 4, &mut rng);
            let zeros = img.iter().filter(|&&v| v == 0.0).count();
            // Same hole in both channels; at most 4×4, at least 2×2 (a corner clip).
            assert_eq!(img[..64].iter().filter(|&&v| v == 0.0).count() * 2, zeros);
            assert!((2 * 4..=2 * 16).contains(&zeros), "{zeros}");
        }
    }
}

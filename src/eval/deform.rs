//! The paper's novel deformations (Tables 4 and 9): rotation by an angle, shear, zoom in and
//! zoom out, applied to `[c, h, w]` images by inverse mapping about the image centre with
//! nearest-neighbour sampling and a constant fill outside the image — as the transforms the
//! official code's `interpolation_exp.py` used. A zoom factor z samples the source at
//! centre + z·(p − centre): z = 0.6 is "zoom in 60%" (the central 60% box scaled up to full
//! size), z = 1.4 is "zoom out 140%" (a box 140% of the image, padded, scaled down).

/// One deformation with its parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Deformation {
    /// Rotation by this many degrees (counter-clockwise).
    Rotate(f64),
    /// Shear by this angle in degrees: source x = x − sin(φ)·y, y = cos(φ)·y (about the centre).
    Shear(f64),
    /// Sample the source at centre + z·(p − centre).
    Zoom(f64),
}

/// Deforms a `[c, h, w]` image (values of any type) into a new one; outside pixels get `fill`.
pub fn apply<T: Copy>(img: &[T], shape: [usize; 3], d: Deformation, fill: T) -> Vec<T> {
    let [c, h, w] = shape;
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    // The source point of output pixel (y, x), relative to the centre: (dy, dx) → (sy, sx).
    let map = |dy: f64, dx: f64| -> (f64, f64) {
        match d {
            Deformation::Rotate(deg) => {
                // Inverse of a counter-clockwise rotation (y axis pointing down): rotate back.
                let (s, co) = deg.to_radians().sin_cos();
                (co * dy + s * dx, co * dx - s * dy)
            }
            Deformation::Shear(deg) => {
                let (s, co) = deg.to_radians().sin_cos();
                (co * dy, dx - s * dy)
            }
            Deformation::Zoom(z) => (z * dy, z * dx),
        }
    };
    let mut out = vec![fill; img.len()];
    for y in 0..h {
        for x in 0..w {
            let (sy, sx) = map(y as f64 - cy, x as f64 - cx);
            let (sy, sx) = ((sy + cy).round(), (sx + cx).round());
            if sy < 0.0 || sx < 0.0 || sy >= h as f64 || sx >= w as f64 {
                continue;
            }
            let (sy, sx) = (sy as usize, sx as usize);
            for ch in 0..c {
                out[(ch * h + y) * w + x] = img[(ch * h + sy) * w + sx];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(h: usize, w: usize) -> Vec<u16> {
        (0..2 * h * w).map(|i| i as u16).collect()
    }

    #[test]
    fn identity_cases_are_exact() {
        let img = image(5, 5);
        assert_eq!(apply(&img, [2, 5, 5], Deformation::Zoom(1.0), 0), img);
        assert_eq!(apply(&img, [2, 5, 5], Deformation::Rotate(0.0), 0), img);
        assert_eq!(apply(&img, [2, 5, 5], Deformation::Shear(0.0), 0), img);
        assert_eq!(apply(&img, [2, 5, 5], Deformation::Rotate(360.0), 0), img);
    }

    #[test]
    fn rotation_by_90_degrees_is_an_exact_permutation() {
        // Counter-clockwise by 90°: out[y][x] = in[x][w−1−y] (the top row becomes the left
        // column read upwards), on even and odd sizes, in every channel.
        for n in [4, 5] {
            let img = image(n, n);
            let out = apply(&img, [2, n, n], Deformation::Rotate(90.0), 0);
            for ch in 0..2 {
                for y in 0..n {
                    for x in 0..n {
                        assert_eq!(
                            out[(ch * n + y) * n + x],
                            img[(ch * n + x) * n + (n - 1 - y)],
                            "n{n} ch{ch} ({y},{x})"
                        );
                    }
                }
            }
            // Four quarter turns give the image back.
            let mut back = img.clone();
            for _ in 0..4 {
                back = apply(&back, [2, n, n], Deformation::Rotate(90.0), 0);
            }
            assert_eq!(back, img);
        }
    }

    #[test]
    fn zooming_out_pads_and_zooming_in_crops() {
        let img = vec![9u8; 8 * 8];
        // Zoom out 200%: the image fills the central half; the border is fill.
        let out = apply(&img, [1, 8, 8], Deformation::Zoom(2.0), 0);
        assert_eq!(out[0], 0);
        assert_eq!(out[4 * 8 + 4], 9);
        assert!(out.iter().filter(|&&v| v == 9).count() < 8 * 8 / 2);
        // Zoom in 50%: every output pixel comes from the image.
        assert!(
            apply(&img, [1, 8, 8], Deformation::Zoom(0.5), 0)
                .iter()
                .all(|&v| v == 9)
        );
    }
}

//! The paper's novel deformations (Tables 4 and 9): rotation by an angle, shear, zoom in and
//! zoom out, applied to `[c, h, w]` images by inverse mapping with nearest-neighbour sampling
//! and a constant fill outside the image — the geometry of the transforms the official code's
//! `interpolation_exp.py` used (`affine_transforms.py`, after torchsample):
//!
//! - each output pixel (row r, column c) samples the source at `M·(p − o) + o`, as
//!   `scipy.ndimage.affine_transform(x, M, offset)` does, about the point `o = (h/2 + 0.5,
//!   w/2 + 0.5)` (`transform_matrix_offset_center`): 16.5 px on a 32-px image, one pixel below
//!   and right of the geometric centre 15.5, which the official code uses as it is;
//! - rotation by θ: `M = [[cos θ, −sin θ], [sin θ, cos θ]]`;
//! - shear by φ: `M = [[1, −sin φ], [0, cos φ]]`, so the source is
//!   `(r − sin φ·c, cos φ·c)` relative to `o` (the row moves with the column);
//! - zoom by z: `M = z·I`; z = 0.6 is "zoom in 60%" (a 60% box scaled up to full size),
//!   z = 1.4 is "zoom out 140%" (a box 140% of the image, padded, scaled down);
//! - nearest neighbour as scipy's order-0 spline: the source index is `floor(x + 0.5)`.

/// One deformation with its parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Deformation {
    /// Rotation by this many degrees: `M = [[cos θ, −sin θ], [sin θ, cos θ]]`.
    Rotate(f64),
    /// Shear by this angle in degrees: `M = [[1, −sin φ], [0, cos φ]]`.
    Shear(f64),
    /// Sample the source at o + z·(p − o).
    Zoom(f64),
}

/// The point the official transforms turn about, (row, column): `(h/2 + 0.5, w/2 + 0.5)`.
pub fn origin(h: usize, w: usize) -> (f64, f64) {
    (h as f64 / 2.0 + 0.5, w as f64 / 2.0 + 0.5)
}

/// Deforms a `[c, h, w]` image (values of any type) into a new one; outside pixels get `fill`.
pub fn apply<T: Copy>(img: &[T], shape: [usize; 3], d: Deformation, fill: T) -> Vec<T> {
    let [c, h, w] = shape;
    let (oy, ox) = origin(h, w);
    // M applied to the output pixel's offset from the origin (dy, dx): the source's offset.
    let map = |dy: f64, dx: f64| -> (f64, f64) {
        match d {
            Deformation::Rotate(deg) => {
                let (s, co) = deg.to_radians().sin_cos();
                (co * dy - s * dx, s * dy + co * dx)
            }
            Deformation::Shear(deg) => {
                let (s, co) = deg.to_radians().sin_cos();
                (dy - s * dx, co * dx)
            }
            Deformation::Zoom(z) => (z * dy, z * dx),
        }
    };
    let mut out = vec![fill; img.len()];
    for y in 0..h {
        for x in 0..w {
            let (sy, sx) = map(y as f64 - oy, x as f64 - ox);
            let (sy, sx) = ((sy + oy + 0.5).floor(), (sx + ox + 0.5).floor());
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

    /// `out[y][x]` for the 4×4 image whose pixel (r, c) holds `10·r + c`, `None` = fill.
    fn pixel_map(d: Deformation) -> Vec<Option<u16>> {
        let img: Vec<u16> = (0..16).map(|i| 10 * (i / 4) + i % 4).collect();
        apply(
            &img.iter().map(|&v| Some(v)).collect::<Vec<_>>(),
            [1, 4, 4],
            d,
            None,
        )
    }

    #[test]
    fn the_origin_is_the_official_codes() {
        // transform_matrix_offset_center: h/2 + 0.5, i.e. 16.5 px on 32 px (not 15.5).
        assert_eq!(origin(32, 32), (16.5, 16.5));
        assert_eq!(origin(4, 6), (2.5, 3.5));
        // Zoom 0.5 about 2.5 on 4×4, by hand: source index floor(0.5·(i − 2.5) + 3) for
        // i = 0..4 is 1, 2, 2, 3 (about the geometric centre 1.5 it would be 1, 1, 2, 2).
        let m = [1, 2, 2, 3];
        let want: Vec<Option<u16>> = (0..16).map(|i| Some(10 * m[i / 4] + m[i % 4])).collect();
        assert_eq!(pixel_map(Deformation::Zoom(0.5)), want);
    }

    #[test]
    fn shear_moves_rows_along_columns_as_the_official_code() {
        // φ = 30° (sin 0.5, cos 0.866) about 2.5, by hand: the source of (y, x) is
        // (floor(y − 2.5 − 0.5·(x − 2.5) + 3), floor(0.866·(x − 2.5) + 3)):
        // columns 0 and 1 read row y + 1 (row 3 falls off: fill), columns 2 and 3 read row y,
        // and every column reads its own column (0.835, 1.701, 2.567, 3.433 floor to x).
        let f = None;
        let want = vec![
            Some(10),
            Some(11),
            Some(2),
            Some(3),
            Some(20),
            Some(21),
            Some(12),
            Some(13),
            Some(30),
            Some(31),
            Some(22),
            Some(23),
            f,
            f,
            Some(32),
            Some(33),
        ];
        assert_eq!(pixel_map(Deformation::Shear(30.0)), want);
    }

    #[test]
    fn rotation_by_90_degrees_is_the_official_matrix() {
        // θ = 90° about 2.5, by hand: the source of (y, x) is (floor(5.5 − x), floor(y + 0.5))
        // = (5 − x, y): columns 0 and 1 fall off the image (rows 5 and 4).
        let want: Vec<Option<u16>> = (0..16)
            .map(|i| {
                let (y, x) = (i / 4, i % 4);
                (x >= 2).then(|| 10 * (5 - x as u16) + y as u16)
            })
            .collect();
        assert_eq!(pixel_map(Deformation::Rotate(90.0)), want);
        // Every channel moves alike.
        let img = image(4, 4);
        let out = apply(&img, [2, 4, 4], Deformation::Rotate(90.0), 0);
        assert_eq!(out[16 + 4 + 2], img[16 + 3 * 4 + 1]);
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

;; The web engine's one hot loop: y = W x on float32, W row-major (rows x cols), four rows at a time
;; with f32x4 products (one accumulator per row, so the four sums run side by side).
;; Byte addresses; rows and cols are multiples of 4 (the engine pads its matrices and vectors with
;; zeros) and every row starts 16-byte aligned. The encoder (tools/wat.py) turns this file into the
;; bytes inlined in charrnn.js; tests/test_export_web.py re-encodes it and compares.
(module
  (import "env" "memory" (memory 1))
  (func $matvec (export "matvec")
    (param $w i32) (param $x i32) (param $y i32) (param $rows i32) (param $cols i32)
    (local $stride i32) (local $xend i32) (local $yend i32) (local $xp i32)
    (local $w0 i32) (local $w1 i32) (local $w2 i32) (local $w3 i32)
    (local $xv v128) (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    ;; stride = cols * 4 bytes; x ends at x + stride; y ends at y + rows * 4
    local.get $cols  i32.const 2  i32.shl  local.set $stride
    local.get $x  local.get $stride  i32.add  local.set $xend
    local.get $y  local.get $rows  i32.const 2  i32.shl  i32.add  local.set $yend
    block $done
      local.get $rows  i32.eqz  br_if $done
      local.get $cols  i32.eqz  br_if $done
      loop $row
        local.get $w  local.set $w0
        local.get $w0  local.get $stride  i32.add  local.set $w1
        local.get $w1  local.get $stride  i32.add  local.set $w2
        local.get $w2  local.get $stride  i32.add  local.set $w3
        f32.const 0  f32x4.splat  local.tee $a0  local.tee $a1  local.tee $a2  local.set $a3
        local.get $x  local.set $xp
        loop $col
          local.get $xp  v128.load  local.set $xv
          local.get $a0  local.get $w0  v128.load  local.get $xv  f32x4.mul  f32x4.add  local.set $a0
          local.get $a1  local.get $w1  v128.load  local.get $xv  f32x4.mul  f32x4.add  local.set $a1
          local.get $a2  local.get $w2  v128.load  local.get $xv  f32x4.mul  f32x4.add  local.set $a2
          local.get $a3  local.get $w3  v128.load  local.get $xv  f32x4.mul  f32x4.add  local.set $a3
          local.get $w0  i32.const 16  i32.add  local.set $w0
          local.get $w1  i32.const 16  i32.add  local.set $w1
          local.get $w2  i32.const 16  i32.add  local.set $w2
          local.get $w3  i32.const 16  i32.add  local.set $w3
          local.get $xp  i32.const 16  i32.add  local.tee $xp
          local.get $xend  i32.lt_u  br_if $col
        end
        ;; each row's four lanes summed in a fixed order: (0 + 1) + (2 + 3)
        local.get $y
        local.get $a0  f32x4.extract_lane 0  local.get $a0  f32x4.extract_lane 1  f32.add
        local.get $a0  f32x4.extract_lane 2  local.get $a0  f32x4.extract_lane 3  f32.add  f32.add
        f32.store offset=0
        local.get $y
        local.get $a1  f32x4.extract_lane 0  local.get $a1  f32x4.extract_lane 1  f32.add
        local.get $a1  f32x4.extract_lane 2  local.get $a1  f32x4.extract_lane 3  f32.add  f32.add
        f32.store offset=4
        local.get $y
        local.get $a2  f32x4.extract_lane 0  local.get $a2  f32x4.extract_lane 1  f32.add
        local.get $a2  f32x4.extract_lane 2  local.get $a2  f32x4.extract_lane 3  f32.add  f32.add
        f32.store offset=8
        local.get $y
        local.get $a3  f32x4.extract_lane 0  local.get $a3  f32x4.extract_lane 1  f32.add
        local.get $a3  f32x4.extract_lane 2  local.get $a3  f32x4.extract_lane 3  f32.add  f32.add
        f32.store offset=12
        ;; the next four rows start where row 3 ended
        local.get $w3  local.set $w
        local.get $y  i32.const 16  i32.add  local.tee $y
        local.get $yend  i32.lt_u  br_if $row
      end
    end
  )
)

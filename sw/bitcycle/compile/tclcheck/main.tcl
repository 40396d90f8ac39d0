# tclsh main.tcl CATALOG.tcl PYTHON SCRIPT OUT.json SCRATCH_DIR: run SCRIPT against the Vivado stand-in.
lassign $argv catalog python script out scratch
set here [file dirname [file normalize [info script]]]
foreach part {core bd props automation ipx flow} { source [file join $here $part.tcl] }
set ::tc::catalog [lindex [::tc::tcl_file_read $catalog] 0]
set ::tc::python $python
set ::tc::scratch $scratch
set ::tc::script [file normalize $script]
set ::argv {}
set ::argc 0
set ok [expr {![catch {uplevel #0 [list source $::tc::script]} err opts]}]
if {!$ok && [dict get $opts -errorcode] ne "TCLCHECK"} {
    # a plain Tcl error in the script itself: name its line too
    set line [expr {[dict exists $opts -errorinfo] ? [lindex [regexp -inline "\\(file \"[string map {\\ \\\\ . \\.} $::tc::script]\" line (\\d+)\\)" [dict get $opts -errorinfo]] 1] : "?"}]
    set err "[file tail $::tc::script]:$line: $err"
    if {[info exists ::env(TCLCHECK_DEBUG)]} { puts stderr [dict get $opts -errorinfo] }
}
set fh [::tc::tcl_open $out w]
puts $fh [::tc::result_json $ok [expr {$ok ? "" : $err}]]
close $fh
exit [expr {$ok ? 0 : 1}]

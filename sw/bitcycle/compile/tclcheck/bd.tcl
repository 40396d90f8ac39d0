# Vivado stand-in, part 2: block design cells, their CONFIG, pins and interface pins, nets.
proc create_bd_design {args} {
    lassign [::tc::opts create_bd_design {-dir 1 -bdsource 1} $args] o pos
    ::tc::need_project create_bd_design
    set name [lindex $pos 0]
    set p [dict get $::tc::project dir]/[dict get $::tc::project name].srcs/sources_1/bd/$name/$name.bd
    dict set ::tc::virtual $p [list bd $name]
    set ::tc::bd [dict create name $name saved 0 validated 0 file $p]
    return $name
}
proc current_bd_design {args} { return [dict get $::tc::bd name] }
proc save_bd_design {args} { dict set ::tc::bd saved 1; return "" }
proc ::tc::need_bd {cmd} { if {$::tc::bd eq {}} { ::tc::fail "$cmd before create_bd_design" } }
proc ::tc::changed {} { if {$::tc::bd ne {}} { dict set ::tc::bd validated 0; dict set ::tc::bd saved 0 } }

proc ::tc::ip_of_vlnv {vlnv} {
    set parts [split $vlnv :]
    if {[llength $parts] < 3 || [llength $parts] > 4 || [lindex $parts 0] ne "xilinx.com" || [lindex $parts 1] ne "ip"} {
        ::tc::fail "create_bd_cell: -vlnv $vlnv is not vendor:library:name\[:version\] of a Xilinx IP"
    }
    set name [lindex $parts 2]
    if {![dict exists $::tc::catalog $name]} {
        ::tc::fail "create_bd_cell: IP $name is not in the stand-in's catalog ([join [dict keys $::tc::catalog] {, }])"
    }
    return $name
}

proc create_bd_cell {args} {
    lassign [::tc::opts create_bd_cell {-type 1 -vlnv 1 -reference 1 -revision 1} $args] o pos
    ::tc::need_bd create_bd_cell
    set name [lindex $pos 0]
    if {$name eq "" || [llength $pos] != 1} { ::tc::fail "create_bd_cell needs one cell name, got '$pos'" }
    if {[info exists ::tc::cell($name)]} { ::tc::fail "create_bd_cell: a cell named $name exists" }
    set type [string tolower [expr {[dict exists $o -type] ? [dict get $o -type] : "ip"}]]
    if {$type eq "ip"} {
        if {![dict exists $o -vlnv]} { ::tc::fail "create_bd_cell -type ip needs -vlnv" }
        set ip [::tc::ip_of_vlnv [dict get $o -vlnv]]
        set ::tc::cell($name) [dict create kind ip ip $ip vlnv [dict get $o -vlnv] \
            config [dict get $::tc::catalog $ip config] user {} line [::tc::where]]
    } elseif {$type eq "module"} {
        if {![dict exists $o -reference]} { ::tc::fail "create_bd_cell -type module needs -reference" }
        set ref [dict get $o -reference]
        set mods [::tc::modules]
        if {![dict exists $mods $ref]} {
            ::tc::fail "create_bd_cell -reference $ref: no added source file defines module $ref"
        }
        set desc [::tc::hdl $ref {}]
        if {[dict get $desc language] ne "verilog"} {
            ::tc::fail "create_bd_cell -reference $ref: $ref is defined in [file tail [dict get $desc file]]\
 ([dict get $desc language]); a module reference's top must be Verilog or VHDL (UG994: SystemVerilog\
 is not supported at the top of a module reference) - reference a Verilog wrapper"
        }
        set ::tc::cell($name) [dict create kind module ref $ref config [dict get $desc parameters] \
            user {} line [::tc::where]]
    } else {
        ::tc::fail "create_bd_cell -type $type: the stand-in models ip and module"
    }
    ::tc::changed
    return /$name
}

# The HDL of a module reference elaborated with its CONFIG (cached): Verilator reads the project's
# files, global include headers first (a header not added, or not global, is not seen).
proc ::tc::hdl {ref params} {
    set headers {}
    set sources {}
    foreach f $::tc::files {
        lassign $f path fs kind glob
        if {$fs ne "sources_1" || [dict exists $::tc::virtual $path]} continue
        if {$kind eq "Verilog Header"} { if {$glob} { lappend headers $path } } \
        elseif {$kind in {Verilog SystemVerilog}} { lappend sources $path }
    }
    set key [list $ref $params $headers $sources]
    if {[dict exists $::tc::hdl_cache $key]} { return [dict get $::tc::hdl_cache $key] }
    set g {}
    dict for {k v} $params { lappend g -G$k=$v }
    if {[catch {exec $::tc::python -m bitcycle.compile.tclcheck.hdl $ref {*}$headers {*}$sources {*}$g} out]} {
        ::tc::fail [lindex [split $out \n] 0]
    }
    dict set ::tc::hdl_cache $key $out
    return $out
}

proc ::tc::enabled {cellname gate} {
    if {$gate eq ""} { return 1 }
    set cfg [dict get $::tc::cell($cellname) config]
    if {[regexp {^(\w+)>(\d+)$} $gate - p n]} { return [expr {[dict get $cfg $p] > $n}] }
    return [expr {[dict get $cfg $gate] in {1 true}}]
}

# Interfaces of a cell: name -> {kind mode clock width reset}. Module references: inferred from
# port-name prefixes (<bus>_awaddr ... AXI4-Lite/AXI4, <bus>_tdata ... AXI4-Stream), clock and
# reset association from the ports' X_INTERFACE_PARAMETER (ASSOCIATED_BUSIF / ASSOCIATED_RESET).
proc ::tc::interfaces {cellname} {
    set c $::tc::cell($cellname)
    set out {}
    if {[dict get $c kind] eq "ip"} {
        set ip [dict get $::tc::catalog [dict get $c ip]]
        dict for {n i} [dict get $ip interfaces] {
            if {![::tc::enabled $cellname [dict get $i enable]]} continue
            set w 0
            if {[dict exists $i width_param] && [dict get $i width_param] ne ""} {
                set w [dict get $c config [dict get $i width_param]]
            }
            set r ""
            if {[dict exists $ip reset_of $n]} { set r [dict get $ip reset_of $n] }
            dict set out $n [dict create kind [dict get $i kind] mode [dict get $i mode] clock [dict get $i clock] width $w reset $r]
        }
        return $out
    }
    set desc [::tc::hdl [dict get $c ref] [dict get $c user]]
    set ports [dict get $desc ports]
    set buses {}
    set portof {}
    dict for {p info} $ports {
        if {[regexp -nocase {^(\w+)_(awaddr|awvalid|awready|awprot|wdata|wstrb|wvalid|wready|bresp|bvalid|bready|araddr|arvalid|arready|arprot|rdata|rresp|rvalid|rready|tdata|tvalid|tready|tlast|tkeep|tuser)$} $p - bus sig]} {
            dict lappend buses $bus [string tolower $sig]
            dict set portof $bus [string tolower $sig] $p
        }
    }
    dict for {bus sigs} $buses {
        if {"tdata" in $sigs && "tvalid" in $sigs} {
            set mode [expr {[dict get $ports [dict get $portof $bus tvalid] dir] eq "input" ? "slave" : "master"}]
            dict set out $bus [dict create kind axis mode $mode clock "" width [dict get $ports [dict get $portof $bus tdata] width] reset ""]
        } elseif {"awaddr" in $sigs || "araddr" in $sigs} {
            set v [expr {"awvalid" in $sigs ? "awvalid" : "arvalid"}]
            set mode [expr {[dict get $ports [dict get $portof $bus $v] dir] eq "input" ? "slave" : "master"}]
            set aw [dict get $ports [dict get $portof $bus [expr {"awaddr" in $sigs ? "awaddr" : "araddr"}]] width]
            dict set out $bus [dict create kind aximm mode $mode clock "" width 0 reset "" addr_bits $aw]
        }
    }
    dict for {port attrs} [dict get $desc attributes] {
        if {![dict exists $attrs X_INTERFACE_PARAMETER]} continue
        set param [dict get $attrs X_INTERFACE_PARAMETER]
        set reset ""
        regexp {ASSOCIATED_RESET\s+(\w+)} $param - reset
        if {[regexp {ASSOCIATED_BUSIF\s+([\w:]+)} $param - list]} {
            foreach bus [split $list :] {
                if {![dict exists $out $bus]} {
                    ::tc::fail "[dict get $c ref]: $port's ASSOCIATED_BUSIF names $bus, which is no interface of the module"
                }
                dict set out $bus clock $port
                dict set out $bus reset $reset
            }
        }
    }
    return $out
}

# Plain pins of a cell: name -> {dir type width}. Module references: every port not in an
# interface; type clk/rst from X_INTERFACE_INFO, else from the name (Vivado's inference).
proc ::tc::pins {cellname} {
    set c $::tc::cell($cellname)
    set out {}
    if {[dict get $c kind] eq "ip"} {
        dict for {n p} [dict get $::tc::catalog [dict get $c ip] pins] {
            if {[::tc::enabled $cellname [dict get $p enable]]} {
                dict set out $n [dict create dir [dict get $p dir] type [dict get $p type] width 1]
            }
        }
        return $out
    }
    set desc [::tc::hdl [dict get $c ref] [dict get $c user]]
    set buses [dict keys [::tc::interfaces $cellname]]
    dict for {p info} [dict get $desc ports] {
        if {[regexp {^(\w+)_[A-Za-z]+$} $p - bus] && $bus in $buses} continue
        set type data
        if {[dict exists $desc attributes $p X_INTERFACE_INFO]} {
            set x [dict get $desc attributes $p X_INTERFACE_INFO]
            if {[string match *signal:clock:* $x]} { set type clk }
            if {[string match *signal:reset:* $x]} { set type rst }
        } elseif {[regexp -nocase {clk|clock} $p]} { set type clk
        } elseif {[regexp -nocase {rst|reset} $p]} { set type rst }
        dict set out $p [dict create dir [dict get $info dir] type $type width [dict get $info width]]
    }
    return $out
}

proc ::tc::split_path {what path} {
    set path [string trimleft $path /]
    set parts [split $path /]
    if {[llength $parts] != 2} { ::tc::fail "$what: '$path' is not <cell>/<pin>" }
    return $parts
}

proc get_bd_cells {args} {
    lassign [::tc::opts get_bd_cells {-filter 1 -hierarchical 0 -of_objects 1} $args] o pos
    ::tc::need_bd get_bd_cells
    set names [lsort [array names ::tc::cell]]
    if {$pos ne {}} {
        set pick {}
        foreach pat [concat {*}$pos] {
            set hits [lsearch -all -inline -glob $names [string trimleft $pat /]]
            if {$hits eq {} && ![dict exists $o -quiet]} { ::tc::fail "get_bd_cells: no cell matches $pat (cells: [join $names {, }])" }
            lappend pick {*}$hits
        }
        set names $pick
    }
    if {[dict exists $o -filter]} {
        set f [dict get $o -filter]
        if {![regexp {^\s*(VLNV|NAME)\s*(=~|==)\s*(\S+)\s*$} $f - prop op pat]} {
            ::tc::fail "get_bd_cells -filter {$f}: the stand-in models VLNV/NAME =~ / == pattern"
        }
        set names [lmap n $names {
            set v [expr {$prop eq "NAME" ? $n : ([dict exists $::tc::cell($n) vlnv] ? [dict get $::tc::cell($n) vlnv] : "")}]
            if {$op eq "=~" ? [string match $pat $v] : $v eq $pat} { set n } else continue
        }]
    }
    return [lmap n $names {string cat / $n}]
}

proc ::tc::lookup {what kind path quiet} {
    if {[string first / [string trimleft $path /]] < 0 && [info exists ::tc::ext([string trimleft $path /])]} {
        return /[string trimleft $path /]
    }
    lassign [::tc::split_path $what $path] c p
    if {![info exists ::tc::cell($c)]} {
        if {$quiet} { return "" }
        ::tc::fail "$what: no cell '$c' (cells: [join [lsort [array names ::tc::cell]] {, }])"
    }
    set have [::tc::members $kind $c]
    if {![dict exists $have $p]} {
        if {$quiet} { return "" }
        ::tc::fail "$what: cell $c has no [expr {$kind eq {intf} ? {interface pin} : {pin}}] '$p' (it has: [join [lsort [dict keys $have]] {, }])"
    }
    return /$c/$p
}

# get_bd_intf_pins / get_bd_pins: one lookup, `kind` intf or pin
proc ::tc::members {kind c} { if {$kind eq "intf"} { ::tc::interfaces $c } else { ::tc::pins $c } }
proc ::tc::get_members {cmd kind argv} {
    lassign [::tc::opts $cmd {-of_objects 1 -filter 1} $argv] o pos
    if {[dict exists $o -of_objects]} {
        set c [string trimleft [dict get $o -of_objects] /]
        return [lmap n [dict keys [::tc::members $kind $c]] {string cat /$c/ $n}]
    }
    return [lmap p [concat {*}$pos] {::tc::lookup $cmd $kind $p [dict exists $o -quiet]}]
}
proc get_bd_intf_pins {args} { ::tc::get_members get_bd_intf_pins intf $args }
proc get_bd_pins {args} { ::tc::get_members get_bd_pins pin $args }

proc get_bd_nets {args} {
    lassign [::tc::opts get_bd_nets {-of_objects 1} $args] o pos
    set out {}
    foreach p [concat {*}[dict get $o -of_objects]] { if {[info exists ::tc::net($p)]} { lappend out $::tc::net($p) } }
    return $out
}
proc get_bd_intf_nets {args} {
    lassign [::tc::opts get_bd_intf_nets {-of_objects 1} $args] o pos
    set out {}
    foreach p [concat {*}[dict get $o -of_objects]] { if {[info exists ::tc::inet($p)]} { lappend out [list $p $::tc::inet($p)] } }
    return $out
}

proc ::tc::member_info {kind path} {
    if {[info exists ::tc::ext([string trimleft $path /])]} { return $::tc::ext([string trimleft $path /]) }
    lassign [::tc::split_path [expr {$kind eq "intf" ? "interface" : "pin"}] $path] c p
    return [dict get [::tc::members $kind $c] $p]
}
proc ::tc::pin_info {path} { ::tc::member_info pin $path }
proc ::tc::intf_info {path} { ::tc::member_info intf $path }

proc connect_bd_intf_net {args} {
    lassign [::tc::opts connect_bd_intf_net {-boundary_type 1 -intf_net 1} $args] o pos
    ::tc::need_bd connect_bd_intf_net
    if {[llength $pos] != 2} { ::tc::fail "connect_bd_intf_net needs two interface pins, got [llength $pos] ('$pos')" }
    lassign $pos a b
    foreach x [list $a $b] { if {$x eq ""} { ::tc::fail "connect_bd_intf_net: an end is empty (a get_bd_intf_pins found nothing)" } }
    set ia [::tc::intf_info $a]
    set ib [::tc::intf_info $b]
    foreach x [list $a $b] { if {[info exists ::tc::inet($x)]} { ::tc::fail "connect_bd_intf_net: $x is already connected to $::tc::inet($x)" } }
    if {[dict get $ia kind] ne [dict get $ib kind]} {
        ::tc::fail "connect_bd_intf_net: $a is [dict get $ia kind], $b is [dict get $ib kind]"
    }
    if {[dict get $ia mode] eq [dict get $ib mode] && ![info exists ::tc::ext([string trimleft $a /])] && ![info exists ::tc::ext([string trimleft $b /])]} {
        ::tc::fail "connect_bd_intf_net: $a and $b are both [dict get $ia mode]s"
    }
    if {[dict get $ia kind] eq "axis" && [dict get $ia width] && [dict get $ib width] && [dict get $ia width] != [dict get $ib width]} {
        ::tc::fail "connect_bd_intf_net: AXI-Stream TDATA widths differ: $a is [dict get $ia width] bits, $b is [dict get $ib width] bits"
    }
    set ::tc::inet($a) $b
    set ::tc::inet($b) $a
    ::tc::changed
    return "$a:$b"
}

proc connect_bd_net {args} {
    lassign [::tc::opts connect_bd_net {-net 1} $args] o pos
    ::tc::need_bd connect_bd_net
    set pins [concat {*}$pos]
    if {[llength $pins] < 2} { ::tc::fail "connect_bd_net needs at least two pins, got '$pos' (a get_bd_pins found nothing?)" }
    set nets {}
    foreach p $pins {
        ::tc::pin_info $p
        if {[info exists ::tc::net($p)] && $::tc::net($p) ni $nets} { lappend nets $::tc::net($p) }
    }
    set all $pins
    foreach n $nets { lappend all {*}$::tc::members($n) }
    set all [lsort -unique $all]
    set drivers [lmap p $all {
        set i [::tc::pin_info $p]
        set ext [info exists ::tc::ext([string trimleft $p /])]
        if {($ext && [dict get $i dir] eq "input") || (!$ext && [dict get $i dir] eq "output")} { set p } else continue
    }]
    if {[llength $drivers] > 1} { ::tc::fail "connect_bd_net: the net would have [llength $drivers] drivers ([join $drivers {, }])" }
    set name [expr {[llength $nets] ? [lindex $nets 0] : "net_[incr ::tc::nets]"}]
    foreach n $nets { unset ::tc::members($n) }
    set ::tc::members($name) $all
    foreach p $all { set ::tc::net($p) $name }
    ::tc::changed
    return $name
}

proc create_bd_port {args} {
    lassign [::tc::opts create_bd_port {-dir 1 -type 1 -from 1 -to 1 -freq_hz 1} $args] o pos
    set n [lindex $pos 0]
    set ::tc::ext($n) [dict create dir [string tolower [dict get $o -dir]] type [expr {[dict exists $o -type] ? [dict get $o -type] : "data"}] width 1]
    return /$n
}
proc create_bd_intf_port {args} {
    lassign [::tc::opts create_bd_intf_port {-mode 1 -vlnv 1} $args] o pos
    set n [lindex $pos 0]
    set ::tc::ext($n) [dict create kind [lindex [split [dict get $o -vlnv] :] 2] mode [string tolower [dict get $o -mode]] clock "" width 0 reset ""]
    return /$n
}
# make_bd_intf_pins_external / make_bd_pins_external: an external port per pin, named <pin>_0 or -name
proc ::tc::make_external {cmd kind argv} {
    lassign [::tc::opts $cmd {-name 1} $argv] o pos
    set out {}
    foreach p [concat {*}$pos] {
        set i [::tc::member_info $kind $p]
        set n [expr {[dict exists $o -name] ? [dict get $o -name] : "[lindex [split $p /] end]_0"}]
        if {[info exists ::tc::ext($n)]} { ::tc::fail "$cmd: a port named $n exists" }
        if {$kind eq "intf"} {
            set ::tc::ext($n) [dict replace $i mode [expr {[dict get $i mode] eq "master" ? "slave" : "master"}]]
            set ::tc::inet($p) /$n
            set ::tc::inet(/$n) $p
        } else {
            set ::tc::ext($n) [dict create dir [dict get $i dir] type [dict get $i type] width [dict get $i width] config {}]
            connect_bd_net /$n $p
        }
        lappend out /$n
    }
    return $out
}
proc make_bd_intf_pins_external {args} { ::tc::make_external make_bd_intf_pins_external intf $args }
